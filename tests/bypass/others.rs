//! OCI, Alibaba, OpenStack, DigitalOcean and Hetzner cases: the instance documents,
//! `meta-data/all` and `/metadata/v1.json` that hold what is denied, the denied paths in every
//! spelling, each cloud's headers (OCI's bearer gate, Alibaba's token headers against AWS's, the
//! gate and token headers of other clouds where a cloud has none), forwarding headers, queries
//! where a cloud takes none, absolute-form targets, writes, smuggling.

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

/// DigitalOcean: the user and vendor data by their paths and by `/metadata/v1.json`, the document
/// of everything below `/metadata/v1`; other paths; then [`plain_cloud_cases`].
pub fn digitalocean() -> Vec<Case> {
    let mut cases: Vec<Case> = digitalocean_data();
    cases.extend(digitalocean_document());
    let mut add = |name: String, bytes: Vec<u8>| cases.push((name, bytes));
    for target in [
        "/metadata/v1/",
        "/metadata/v1",
        "/metadata/",
        "/metadata",
        "/",
        "/metadata/v1/id",
        "/metadata/v1/id?x=1",
        "/metadata/v1/id?user-data",
        "/metadata/v1/interfaces/public/0/ipv4/address",
        "/metadata/v1/user-data-x",
        "/metadata/v2/user-data",
        "/metadata/v1/id/user-data",
    ] {
        add(format!("other: {target}"), get_with(target, ""));
    }
    plain_cloud_cases(
        &mut add,
        "/metadata/v1/id",
        &["/metadata/v1/user-data", "/metadata/v1.json"],
    );
    cases
}

/// `/metadata/v1/user-data` and `/metadata/v1/vendor-data` in every spelling a lenient server
/// reads as them.
pub fn digitalocean_data() -> Vec<Case> {
    let mut cases: Vec<Case> = Vec::new();
    let mut add = |name: String, bytes: Vec<u8>| cases.push((name, bytes));
    for leaf in ["user-data", "vendor-data"] {
        let upper = leaf.to_ascii_uppercase();
        let escaped = leaf.replacen('-', "%2D", 1);
        let first_escaped = format!("%{:02X}{}", leaf.as_bytes()[0], &leaf[1..]);
        let full_width = leaf.replacen('-', "%EF%BC%8D", 1);
        let overlong = leaf.replacen('-', "%C0%AD", 1);
        for rest in [
            format!("/metadata/v1/{leaf}"),
            format!("/metadata/v1/{upper}"),
            format!("/Metadata/V1/{leaf}"),
            format!("/METADATA/v1/{leaf}"),
            format!("/metadata/v1/{leaf}."),
            format!("/metadata/v1/{leaf}%20"),
            format!("/metadata/v1/{leaf}.%20"),
            format!("/metadata/v1/{leaf}/"),
            format!("/metadata/v1/{leaf}//"),
            format!("/metadata/v1/.../{leaf}"),
            format!("/metadata/v1/%20/{leaf}"),
            format!("/metadata/v1./{leaf}"),
            format!("/metadata/v1%20/{leaf}"),
            format!("/metadata/v1/{escaped}"),
            format!("/metadata/v1/{first_escaped}"),
            format!("/metadata/v1/{full_width}"),
            format!("/metadata/v1/{overlong}"),
            format!("/metadata/v1%2F{leaf}"),
            format!("/metadata/v1%2f{leaf}"),
            format!("/metadata%2Fv1%2F{leaf}"),
            format!("/metadata/v1%5C{leaf}"),
            format!("/metadata/v1\\{leaf}"),
            format!("/metadata/v1/./{leaf}"),
            format!("/metadata/v1/id/../{leaf}"),
            format!("/metadata/v1/id/%2e%2e/{leaf}"),
            format!("/metadata/v1/id/%252e%252e/{leaf}"),
            format!("/metadata/v1/id/%u002e%u002e/{leaf}"),
            format!("/metadata/v1/id/..;/{leaf}"),
            format!("/metadata/v1/id/..%20/{leaf}"),
            format!("/metadata/v1/id\\..\\{leaf}"),
            format!("/metadata/v2/../v1/{leaf}"),
            format!("/metadata//v1//{leaf}"),
            format!("//metadata/v1/{leaf}"),
            format!("/metadata/v1/{leaf};x"),
            format!("/metadata/v1;x/{leaf}"),
            format!("/metadata/v1/{leaf}?x=1"),
            format!("/metadata/v1/{leaf}?"),
            format!("/metadata/v1/id?/../{leaf}"),
            format!("/metadata/v1/{leaf}%3Fx"),
            format!("/metadata/v1/{leaf}#x"),
            format!("/metadata/v1/{leaf}%23x"),
            format!("/metadata/v1/{leaf}%00"),
        ] {
            add(format!("path: {rest}"), get_with(&rest, ""));
        }
    }
    cases
}

/// `/metadata/v1.json`, the document of everything below `/metadata/v1`, in every spelling a
/// lenient server reads as it.
pub fn digitalocean_document() -> Vec<Case> {
    [
        "/metadata/v1.json",
        "/metadata/v1.JSON",
        "/metadata/V1.json",
        "/METADATA/V1.JSON",
        "/Metadata/v1.Json",
        "/metadata/v1.json/",
        "/metadata/v1.json//",
        "/metadata/./v1.json",
        "/metadata/.../v1.json",
        "/metadata/v1.json.",
        "/metadata/v1.json%20",
        "/metadata/v1.json.%20",
        "/metadata/v1%2Ejson",
        "/metadata/v1%2ejson",
        "/metadata/v1%252Ejson",
        "/metadata/v1.js%6Fn",
        "/metadata/%761.json",
        "/metadata/v1%u002Ejson",
        "/metadata/v1%EF%BC%8Ejson",
        "/metadata%2Fv1.json",
        "/metadata%2fv1.json",
        "/metadata\\v1.json",
        "/metadata/v1/../v1.json",
        "/metadata/v1/%2e%2e/v1.json",
        "/metadata/v1/id/../../v1.json",
        "/metadata/v1/..;/v1.json",
        "/metadata//v1.json",
        "//metadata/v1.json",
        "/metadata/v1.json;x",
        "/metadata;x/v1.json",
        "/metadata/v1.json?x=1",
        "/metadata/v1.json?",
        "/metadata/v1.json#x",
        "/metadata/v1.json%3F",
        "/metadata/v1/id?/../../v1.json",
    ]
    .into_iter()
    .map(|t| (format!("document: {t}"), get_with(t, "")))
    .collect()
}

/// Hetzner: `/hetzner/v1/userdata` in every spelling, the metadata document and its keys beside it,
/// other paths; then [`plain_cloud_cases`].
pub fn hetzner() -> Vec<Case> {
    let mut cases: Vec<Case> = hetzner_userdata();
    let mut add = |name: String, bytes: Vec<u8>| cases.push((name, bytes));
    for target in [
        "/hetzner/v1/metadata",
        "/hetzner/v1/metadata/",
        "/hetzner/v1/Metadata",
        "/hetzner/v1/metadata.",
        "/hetzner/v1/metadata/instance-id",
        "/hetzner/v1/metadata/public-keys",
        "/hetzner/v1/metadata/private-networks",
        "/hetzner/v1/metadata/userdata",
        "/hetzner/v1/metadata?x=1",
        "/hetzner/v1/metadata/hostname?userdata",
        "/hetzner/v1/",
        "/hetzner/v1",
        "/hetzner/",
        "/",
        "/hetzner/v1/userdata-x",
        "/hetzner/v2/userdata",
        "/metadata/v1/user-data",
        "/latest/user-data",
    ] {
        add(format!("other: {target}"), get_with(target, ""));
    }
    plain_cloud_cases(
        &mut add,
        "/hetzner/v1/metadata/instance-id",
        &["/hetzner/v1/userdata"],
    );
    cases
}

/// `/hetzner/v1/userdata` in every spelling a lenient server reads as it.
pub fn hetzner_userdata() -> Vec<Case> {
    [
        "/hetzner/v1/userdata",
        "/hetzner/v1/USERDATA",
        "/hetzner/v1/UserData",
        "/Hetzner/V1/userdata",
        "/HETZNER/v1/userdata",
        "/hetzner/v1/userdata.",
        "/hetzner/v1/userdata%20",
        "/hetzner/v1/userdata.%20",
        "/hetzner/v1/userdata/",
        "/hetzner/v1/userdata//",
        "/hetzner/v1/.../userdata",
        "/hetzner/v1/%20/userdata",
        "/hetzner/v1./userdata",
        "/hetzner/v1%20/userdata",
        "/hetzner./v1/userdata",
        "/hetzner/v1/user%64ata",
        "/hetzner/v1/%75serdata",
        "/hetzner/v1/user%2564ata",
        "/hetzner/v1/%EF%BD%95serdata",
        "/hetzner/v1%2Fuserdata",
        "/hetzner/v1%2fuserdata",
        "/hetzner%2Fv1%2Fuserdata",
        "/hetzner/v1%5Cuserdata",
        "/hetzner/v1\\userdata",
        "/hetzner/v1/./userdata",
        "/hetzner/v1/metadata/../userdata",
        "/hetzner/v1/metadata/%2e%2e/userdata",
        "/hetzner/v1/metadata/%2E%2E/userdata",
        "/hetzner/v1/metadata/%252e%252e/userdata",
        "/hetzner/v1/metadata/%c0%ae%c0%ae/userdata",
        "/hetzner/v1/metadata/%u002e%u002e/userdata",
        "/hetzner/v1/metadata/..;/userdata",
        "/hetzner/v1/metadata/..%20/userdata",
        "/hetzner/v1/metadata/.../../userdata",
        "/hetzner/v1/metadata\\..\\userdata",
        "/hetzner/v1/metadata%2F..%2Fuserdata",
        "/hetzner/v1/metadata/instance-id/../../userdata",
        "/hetzner/v2/../v1/userdata",
        "/hetzner//v1//userdata",
        "//hetzner/v1/userdata",
        "/hetzner/v1/userdata;x",
        "/hetzner/v1;x/userdata",
        "/hetzner/v1/userdata?x=1",
        "/hetzner/v1/userdata?",
        "/hetzner/v1/metadata?/../../userdata",
        "/hetzner/v1/userdata%3Fx",
        "/hetzner/v1/userdata#x",
        "/hetzner/v1/userdata%23x",
        "/hetzner/v1/userdata%00",
    ]
    .into_iter()
    .map(|t| (format!("path: {t}"), get_with(t, "")))
    .collect()
}

/// Cases for a cloud without a gate, a token or queries (DigitalOcean, Hetzner): absolute-form
/// targets, headers the server never takes (other clouds' gates and tokens, forwarding and
/// rewriting headers, a path in Host), writes, and the smuggling shapes, each hiding a `denied`
/// target behind the `allowed` one.
fn plain_cloud_cases(add: &mut impl FnMut(String, Vec<u8>), allowed: &str, denied: &[&str]) {
    let host = "169.254.169.254";
    for target in denied.iter().copied().chain([allowed]) {
        for absolute in [
            format!("http://{host}{target}"),
            format!("HTTP://{host}{target}"),
            format!("http://{host}:80{target}"),
            format!("http://{host}@127.0.0.1{target}"),
            format!("http://127.0.0.1{target}"),
            format!("https://{host}{target}"),
            format!("http://{host}{target}?x=1"),
        ] {
            add(format!("absolute: {absolute}"), get_with(&absolute, ""));
        }
    }
    let first = denied[0];
    for (name, headers) in [
        ("X-Forwarded-For", "X-Forwarded-For: 10.0.0.9\r\n"),
        ("Forwarded", "Forwarded: for=10.0.0.9;host=x\r\n"),
        ("X-Real-IP", "X-Real-IP: 10.0.0.9\r\n"),
        ("X-Forwarded-Host", "X-Forwarded-Host: 169.254.169.254\r\n"),
        ("Metadata-Flavor", "Metadata-Flavor: Google\r\n"),
        ("Metadata", "Metadata: true\r\n"),
        ("Authorization", "Authorization: Bearer Oracle\r\n"),
        ("AWS token", "X-aws-ec2-metadata-token: tok\r\n"),
        ("Alibaba token", "X-aliyun-ecs-metadata-token: tok\r\n"),
        (
            "OpenStack instance",
            "X-Instance-ID: i-other\r\nX-Instance-ID-Signature: abc\r\nX-Tenant-ID: t\r\n",
        ),
        (
            "X-Original-URL",
            &format!("X-Original-URL: {first}\r\nX-Rewrite-URL: {first}\r\n"),
        ),
        (
            "X-Forwarded-Prefix",
            &format!("X-Forwarded-Prefix: {first}\r\n"),
        ),
        (
            "obs-fold",
            &format!("User-Agent: x\r\n X-Original-URL: {first}\r\n"),
        ),
    ] {
        add(
            format!("header {name}: allowed"),
            get_with(allowed, headers),
        );
        add(format!("header {name}: denied"), get_with(first, headers));
    }
    add(
        "host: path in Host".into(),
        format!("GET {allowed} HTTP/1.1\r\nHost: {host}{first}\r\n\r\n").into_bytes(),
    );
    add(
        "host: userinfo in Host".into(),
        format!("GET {first} HTTP/1.1\r\nHost: {host}:80@127.0.0.1\r\n\r\n").into_bytes(),
    );
    add(
        "host: absolute-form, other Host".into(),
        format!("GET http://127.0.0.1{first} HTTP/1.1\r\nHost: {host}\r\n\r\n").into_bytes(),
    );
    for target in denied.iter().copied().chain([allowed]) {
        for (method, headers, body) in [
            ("HEAD", "", ""),
            ("POST", "Content-Length: 6\r\n", "secret"),
            (
                "POST",
                "Transfer-Encoding: chunked\r\n",
                "6\r\nsecret\r\n0\r\n\r\n",
            ),
            ("PUT", "Content-Length: 0\r\n", ""),
            ("DELETE", "", ""),
            ("OPTIONS", "", ""),
            ("PATCH", "Content-Length: 0\r\n", ""),
            ("get", "", ""),
        ] {
            add(
                format!("method: {method} {target} {}", headers.trim_end())
                    .trim_end()
                    .to_owned(),
                raw(&format!("{method} {target} HTTP/1.1"), headers, body),
            );
        }
    }
    for &target in denied {
        for (name, bytes) in smuggling(allowed, &format!("GET {target} HTTP/1.1"), "") {
            add(format!("{name} ({target})"), bytes);
        }
    }
}
