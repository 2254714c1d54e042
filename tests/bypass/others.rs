//! OCI, Alibaba and OpenStack cases: the instance documents and `meta-data/all` that hold what is
//! denied, the denied paths in every spelling, each cloud's headers (OCI's bearer gate, Alibaba's
//! token headers against AWS's), forwarding headers, writes, smuggling.

use super::clouds::{raw, smuggling};
use super::corpus::Case;

const BEARER: &str = "Authorization: Bearer Oracle\r\n";

fn get_with(target: &str, headers: &str) -> Vec<u8> {
    raw(&format!("GET {target} HTTP/1.1"), headers, "")
}

pub fn oci() -> Vec<Case> {
    let mut cases: Vec<Case> = Vec::new();
    let mut add = |name: String, bytes: Vec<u8>| cases.push((name, bytes));
    for version in ["v2", "v1"] {
        for rest in [
            "/instance/",
            "/instance",
            "/instance//",
            "/instance/metadata",
            "/instance/metadata/",
            "/instance/Metadata",
            "/instance/METADATA/",
            "/instance/metadata/user_data",
            "/instance/metadata/USER_DATA",
            "/instance/Metadata/User_Data",
            "/instance/metadata/user_data.",
            "/instance/metadata/user_data%20",
            "/instance/metadata/user_data/",
            "/instance/metadata/.../user_data",
            "/instance/metadata/user%5Fdata",
            "/instance/metadata/user_dat%61",
            "/instance/metadata%2Fuser_data",
            "/instance/region/../metadata/user_data",
            "/instance/metadata/user_data;x",
            "/identity/key.pem",
            "/identity/cert.pem",
            "/identity/intermediate.pem",
            "/identity/",
            "/identity",
            "/identity/KEY.PEM",
            "/Identity/key.pem",
            "/identity./key.pem",
            "/identity/key.pem.",
            "/identity/key.pem%20",
            "/.../identity/key.pem",
            "/identity/key%2Epem",
        ] {
            add(
                format!("{version}: {rest}"),
                get_with(&format!("/opc/{version}{rest}"), BEARER),
            );
        }
    }
    for target in [
        "/opc/V2/instance/",
        "/opc/V2/instance/metadata/user_data",
        "/OPC/v2/instance/",
        "/opc/v2/instance/region?x=1",
        "/opc/v2/instance/?recursive=true",
        "/opc/v2/",
        "/opc/",
        "/openstack/latest/user_data",
    ] {
        add(format!("path: {target}"), get_with(target, BEARER));
    }
    let user_data = "/opc/v2/instance/metadata/user_data";
    for (name, headers) in [
        ("missing", ""),
        ("bearer oracle", "Authorization: bearer oracle\r\n"),
        ("BEARER ORACLE", "Authorization: BEARER ORACLE\r\n"),
        ("two spaces", "Authorization: Bearer  Oracle\r\n"),
        (
            "doubled",
            "Authorization: Bearer Oracle\r\nAuthorization: Bearer Oracle\r\n",
        ),
        ("list", "Authorization: Bearer Oracle, Bearer Oracle\r\n"),
        (
            "and Basic",
            "Authorization: Bearer Oracle\r\nAuthorization: Basic eDp5\r\n",
        ),
        ("obs-fold", "Authorization: Bearer\r\n Oracle\r\n"),
        ("no space", "authorization:Bearer Oracle\r\n"),
    ] {
        add(
            format!("gate {name}: user_data"),
            get_with(user_data, headers),
        );
        add(
            format!("gate {name}: document"),
            get_with("/opc/v2/instance/", headers),
        );
        add(
            format!("gate {name}: allowed"),
            get_with("/opc/v2/instance/region", headers),
        );
    }
    add(
        "gate: v1 with Basic".into(),
        get_with("/opc/v1/instance/region", "Authorization: Basic eDp5\r\n"),
    );
    for header in [
        "Forwarded: for=10.0.0.1\r\n",
        "X-Forwarded-For: 10.0.0.1\r\n",
        "X-Forwarded-Host: 169.254.169.254\r\n",
        "X-Forwarded-Port: 80\r\n",
    ] {
        add(
            format!("forwarding header: {}", header.trim_end()),
            get_with("/opc/v2/instance/region", &format!("{BEARER}{header}")),
        );
    }
    add(
        "method: PUT user_data".into(),
        raw(
            "PUT /opc/v2/instance/metadata/user_data HTTP/1.1",
            &format!("{BEARER}Content-Length: 0\r\n"),
            "",
        ),
    );
    for (name, bytes) in smuggling(
        "/opc/v2/instance/region",
        "GET /opc/v2/instance/ HTTP/1.1",
        BEARER,
    ) {
        add(format!("{name} (document)"), bytes);
    }
    for (name, bytes) in smuggling(
        "/opc/v2/instance/region",
        "GET /opc/v2/identity/key.pem HTTP/1.1",
        BEARER,
    ) {
        add(format!("{name} (key)"), bytes);
    }
    cases
}

const ALI_TOKEN: &str = "X-aliyun-ecs-metadata-token: tok\r\n";

pub fn alibaba() -> Vec<Case> {
    let mut cases: Vec<Case> = Vec::new();
    let mut add = |name: String, bytes: Vec<u8>| cases.push((name, bytes));
    for target in [
        "/latest/meta-data/all",
        "/latest/meta-data/all/",
        "/latest/meta-data//all",
        "/latest/meta-data/al%6C",
        "/latest/meta-data/all;x",
        "/latest/meta-data/x/../all",
        "/latest/meta-data/all?x=1",
        "/latest/meta-data/ram/security-credentials/",
        "/latest/meta-data/ram/security-credentials/role",
        "/latest/meta-data/RAM/security-credentials/role",
        "/latest/meta-data/Ram/Security-Credentials/role",
        "/latest/meta-data/ram./security-credentials/role",
        "/latest/meta-data/ram%20/security-credentials/role",
        "/latest/meta-data/.../ram/security-credentials/role",
        "/latest/meta-data/r%61m/security-credentials/role",
        "/latest/meta-data/ram%2Fsecurity-credentials/role",
        "/latest/META-DATA/ram/security-credentials/role",
        "/2016-01-01/meta-data/ram/security-credentials/role",
        "/latest/user-data",
        "/latest/api/token/../meta-data/ram/security-credentials/role",
    ] {
        add(format!("path: {target}"), get_with(target, ALI_TOKEN));
        add(format!("path, no token: {target}"), get_with(target, ""));
    }
    add(
        "token: AWS token header on RAM".into(),
        get_with(
            "/latest/meta-data/ram/security-credentials/role",
            "X-aws-ec2-metadata-token: tok\r\n",
        ),
    );
    add(
        "token: both token headers".into(),
        get_with(
            "/latest/meta-data/instance-id",
            "X-aliyun-ecs-metadata-token: tok\r\nX-aws-ec2-metadata-token: other\r\n",
        ),
    );
    for (name, headers) in [
        ("aliyun", "X-aliyun-ecs-metadata-token-ttl-seconds: 21600\r\n"),
        ("aws", "X-aws-ec2-metadata-token-ttl-seconds: 21600\r\n"),
        ("ttl 0", "X-aliyun-ecs-metadata-token-ttl-seconds: 0\r\n"),
        ("ttl 21601", "X-aliyun-ecs-metadata-token-ttl-seconds: 21601\r\n"),
        ("ttl +5", "X-aliyun-ecs-metadata-token-ttl-seconds: +5\r\n"),
        (
            "ttl twice",
            "X-aliyun-ecs-metadata-token-ttl-seconds: 5\r\nX-aliyun-ecs-metadata-token-ttl-seconds: 21600\r\n",
        ),
        ("ttl folded", "X-aliyun-ecs-metadata-token-ttl-seconds:\r\n 60\r\n"),
        (
            "X-Forwarded-For",
            "X-aliyun-ecs-metadata-token-ttl-seconds: 60\r\nX-Forwarded-For: 10.0.0.1\r\n",
        ),
        (
            "Forwarded",
            "X-aliyun-ecs-metadata-token-ttl-seconds: 60\r\nForwarded: for=10.0.0.1\r\n",
        ),
    ] {
        add(
            format!("token PUT: {name}"),
            raw("PUT /latest/api/token HTTP/1.1", headers, ""),
        );
    }
    add(
        "token PUT: ../ram".into(),
        raw(
            "PUT /latest/api/token/../../latest/meta-data/ram/security-credentials/role HTTP/1.1",
            "X-aliyun-ecs-metadata-token-ttl-seconds: 60\r\n",
            "",
        ),
    );
    add(
        "forwarding header: read".into(),
        get_with(
            "/latest/meta-data/instance-id",
            &format!("{ALI_TOKEN}X-Forwarded-For: 10.0.0.1\r\n"),
        ),
    );
    for (name, bytes) in smuggling(
        "/latest/meta-data/instance-id",
        "GET /latest/meta-data/all HTTP/1.1",
        ALI_TOKEN,
    ) {
        add(format!("{name} (all)"), bytes);
    }
    cases
}

pub fn openstack() -> Vec<Case> {
    let mut cases: Vec<Case> = Vec::new();
    let mut add = |name: String, bytes: Vec<u8>| cases.push((name, bytes));
    for version in ["latest", "2018-08-27", "2012-08-10"] {
        for leaf in [
            "user_data",
            "USER_DATA",
            "User_Data",
            "user_data.",
            "user_data%20",
            "user_data/",
            ".../user_data",
            "user%5Fdata",
            "meta_data.json/../user_data",
            "user_data;x",
            "user_data?x=1",
            "password",
            "PASSWORD",
            "password.",
            "password%20",
        ] {
            add(
                format!("{version}: {leaf}"),
                get_with(&format!("/openstack/{version}/{leaf}"), ""),
            );
        }
    }
    for target in [
        "/openstack/Latest/user_data",
        "/OpenStack/latest/user_data",
        "/openstack//latest//user_data",
        "/openstack/latest./user_data",
        "/openstack/latest/",
        "/openstack/latest/meta_data.json",
        "/openstack/latest/vendor_data2.json",
        "/latest/user-data",
        "/latest/user-data/",
        "/2009-04-04/user-data",
        "/1.0/user-data",
        "/latest/meta-data/../user-data",
        "/latest/meta-data/%2e%2e/user-data",
    ] {
        add(format!("path: {target}"), get_with(target, ""));
    }
    for (name, line, headers, body) in [
        (
            "POST password",
            "POST /openstack/latest/password HTTP/1.1",
            "Content-Length: 6\r\n",
            "secret",
        ),
        (
            "POST password, no body",
            "POST /openstack/latest/password HTTP/1.1",
            "Content-Length: 0\r\n",
            "",
        ),
        (
            "POST password, chunked",
            "POST /openstack/latest/password HTTP/1.1",
            "Transfer-Encoding: chunked\r\n",
            "6\r\nsecret\r\n0\r\n\r\n",
        ),
        (
            "PUT password",
            "PUT /openstack/latest/password HTTP/1.1",
            "Content-Length: 0\r\n",
            "",
        ),
        (
            "POST meta_data.json",
            "POST /openstack/latest/meta_data.json HTTP/1.1",
            "Content-Length: 0\r\n",
            "",
        ),
    ] {
        add(format!("method: {name}"), raw(line, headers, body));
    }
    for header in [
        "X-Forwarded-For: 10.0.0.9\r\n",
        "Forwarded: for=10.0.0.9\r\n",
        "X-Real-IP: 10.0.0.9\r\n",
        "X-Forwarded-Host: 169.254.169.254\r\n",
        "X-Instance-ID: i-other\r\nX-Instance-ID-Signature: abc\r\nX-Tenant-ID: t\r\n",
        "X-Instance-ID:\r\n i-other\r\n",
    ] {
        add(
            format!("header: {}", header.lines().next().unwrap_or("")),
            get_with("/openstack/latest/meta_data.json", header),
        );
    }
    for (name, bytes) in smuggling(
        "/openstack/latest/meta_data.json",
        "GET /openstack/latest/user_data HTTP/1.1",
        "",
    ) {
        add(format!("{name} (user_data)"), bytes);
    }
    cases
}
