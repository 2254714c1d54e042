use super::*;
use crate::target::parse_target;

fn class(paths: &CachePaths, path: &str) -> CacheClass {
    paths.class(&parse_target(path).unwrap())
}

#[test]
fn stable_credentials_and_the_rest() {
    let paths = CachePaths::default();
    for path in [
        "/latest/meta-data/instance-id",
        "/latest/meta-data/placement/availability-zone/",
        "/latest/meta-data/placement/region",
        "/latest/dynamic/instance-identity/document",
        "/latest/meta-data/iam/security-credentials/",
        "/latest/meta-data/services/domain",
        "/latest/meta-data/mac",
    ] {
        assert_eq!(class(&paths, path), CacheClass::Stable, "{path}");
    }
    for path in [
        "/latest/meta-data/iam/security-credentials/web-role",
        "/latest/meta-data/identity-credentials/ec2/security-credentials/ec2-instance",
    ] {
        assert_eq!(class(&paths, path), CacheClass::Credentials, "{path}");
    }
    for path in [
        "/latest/user-data",
        "/latest/meta-data/spot/instance-action",
        "/latest/meta-data/events/maintenance/scheduled",
        "/latest/meta-data/network/interfaces/macs/",
        "/latest/meta-data/tags/instance/Name",
        "/latest/meta-data/",
        "/latest/meta-data/iam/info",
        "/latest/meta-data/iam/security-credentials/web-role/extra",
        "/latest/api/token",
    ] {
        assert_eq!(class(&paths, path), CacheClass::Never, "{path}");
    }
}

#[test]
fn operators_add_and_remove() {
    let paths = CachePaths::new(
        &["/latest/meta-data/iam/info".into()],
        &["/latest/meta-data/placement/**".into()],
    )
    .unwrap();
    assert_eq!(
        class(&paths, "/latest/meta-data/iam/info"),
        CacheClass::Stable
    );
    assert_eq!(
        class(&paths, "/latest/meta-data/placement/region"),
        CacheClass::Never
    );
    // Removal reads leniently: a spelling variant of a removed path is not kept either.
    assert_eq!(
        class(&paths, "/latest/meta-data/Placement/region"),
        CacheClass::Never
    );
    assert_eq!(
        class(&paths, "/latest/meta-data/instance-id"),
        CacheClass::Stable
    );
    let err = CachePaths::new(&["relative".into()], &[]).unwrap_err();
    assert_eq!((err.0, err.1), ("add", 0));
}
