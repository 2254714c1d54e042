//! OCI, Alibaba, OpenStack, DigitalOcean, Hetzner, Tencent, Huawei, Exoscale and Linode cases:
//! the instance documents, `meta-data/all` and `/metadata/v1.json` that hold what is denied, the
//! denied paths in every spelling, each cloud's headers (OCI's bearer gate, Alibaba's and
//! Linode's token headers against AWS's, the gate and token headers of other clouds where a cloud
//! has none), token endpoints (Linode's own, and AWS's where it is an ordinary path), forwarding
//! headers, queries where a cloud takes none, absolute-form targets, writes, smuggling.

use super::clouds::{raw, raw_to, smuggling};
use super::corpus::Case;

const BEARER: &str = "Authorization: Bearer Oracle\r\n";

fn get_with(target: &str, headers: &str) -> Vec<u8> {
    raw(&format!("GET {target} HTTP/1.1"), headers, "")
}

/// [`get_with`] with `Host: {host}`.
fn get_at(host: &str, target: &str, headers: &str) -> Vec<u8> {
    raw_to(host, &format!("GET {target} HTTP/1.1"), headers, "")
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
        "169.254.169.254",
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
        "169.254.169.254",
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

/// Cases for a cloud without a gate or queries (DigitalOcean, Hetzner, Tencent, Huawei, Exoscale
/// without a token either; Linode, whose token flow its own cases cover) whose server is at
/// `host`: absolute-form targets, headers the server never takes
/// (other clouds' gates and tokens, forwarding and rewriting headers, a path in Host), writes,
/// and the smuggling shapes, each hiding a `denied` target behind the `allowed` one.
fn plain_cloud_cases(
    add: &mut impl FnMut(String, Vec<u8>),
    host: &str,
    allowed: &str,
    denied: &[&str],
) {
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
            add(format!("absolute: {absolute}"), get_at(host, &absolute, ""));
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
            get_at(host, allowed, headers),
        );
        add(
            format!("header {name}: denied"),
            get_at(host, first, headers),
        );
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
                raw_to(host, &format!("{method} {target} HTTP/1.1"), headers, body),
            );
        }
    }
    for &target in denied {
        for (name, bytes) in smuggling(allowed, &format!("GET {target} HTTP/1.1"), "") {
            add(format!("{name} ({target})"), bytes);
        }
    }
}

/// Tencent: the CAM role's credentials and the user data in every spelling, the listings above
/// the credentials (the listing names the role: denied too, though no secret), other paths, the
/// token flow it does not have; then [`plain_cloud_cases`], at 169.254.0.23.
pub fn tencent() -> Vec<Case> {
    let mut cases: Vec<Case> = tencent_credentials();
    cases.extend(tencent_user_data());
    let host = "169.254.0.23";
    let mut add = |name: String, bytes: Vec<u8>| cases.push((name, bytes));
    for target in [
        "/latest/meta-data/cam/security-credentials/",
        "/latest/meta-data/cam/security-credentials",
        "/latest/meta-data/CAM/Security-Credentials/",
        "/latest/meta-data/cam/security-credentials./",
        "/latest/meta-data/cam/security-credentials/role/..",
        "/latest/meta-data/cam/security-credentials/?x=1",
        "/latest/meta-data/cam/",
        "/latest/meta-data/cam",
        "/latest/meta-data/cam/security-credentials-x",
        "/latest/meta-data/",
        "/latest/meta-data",
        "/latest/meta-data/instance-id",
        "/latest/meta-data/placement/region",
        "/latest/meta-data/instance-id?x=1",
        "/latest/meta-data/user-data",
        "/latest/meta-data/iam/security-credentials/role",
        "/latest/meta-data/ram/security-credentials/role",
        "/latest/user-data-x",
        "/latest/",
        "/latest",
        "/",
        "/latest/api/token",
        "/1.0/meta-data/instance-id",
        "/2017-09-19/meta-data/cam/security-credentials/role",
        "/2017-09-19/user-data",
        "/1.0/user-data",
        "/openstack/latest/user_data",
    ] {
        add(format!("other: {target}"), get_at(host, target, ""));
    }
    for (name, headers) in [
        ("AWS", "X-aws-ec2-metadata-token-ttl-seconds: 21600\r\n"),
        (
            "Alibaba",
            "X-aliyun-ecs-metadata-token-ttl-seconds: 21600\r\n",
        ),
    ] {
        add(
            format!("token PUT: {name}"),
            raw_to(host, "PUT /latest/api/token HTTP/1.1", headers, ""),
        );
    }
    plain_cloud_cases(
        &mut add,
        host,
        "/latest/meta-data/instance-id",
        &[
            "/latest/meta-data/cam/security-credentials/role",
            "/latest/user-data",
        ],
    );
    cases
}

/// `/latest/meta-data/cam/security-credentials/<role>` in every spelling a lenient server reads
/// as it: of the whole, and of the `cam` and `security-credentials` segments.
pub fn tencent_credentials() -> Vec<Case> {
    let mut targets = spellings(
        "/latest/meta-data",
        "cam/security-credentials/role",
        "instance-id",
    );
    targets.extend(spellings(
        "/latest/meta-data/cam",
        "security-credentials/role",
        "x",
    ));
    targets.extend(
        [
            "/latest/meta-data/cam/security-credentials/tke-node-role",
            "/latest/meta-data/cam/security-credentials/role/x",
            "/latest/meta-data/cam/security-credentials/ROLE",
            "/latest/meta-data/cam/security-credentials/role%2F",
            "/latest/meta-data/Cam/Security-Credentials/role",
            "/latest/meta-data/cam./security-credentials./role",
            "/latest/meta-data/cam%20/security-credentials%20/role",
            "/latest/meta-data/cam/security-credentials%2Frole",
            "/latest/meta-data/cam%2Fsecurity-credentials%2Frole",
            "/latest/meta-data/cam/security%2Dcredentials/role",
            "/latest/meta-data/cam/security-credentials/x/../role",
            "/latest/META-DATA/cam/security-credentials/role",
            "/latest/meta-data./cam/security-credentials/role",
        ]
        .map(str::to_owned),
    );
    path_cases("169.254.0.23", targets)
}

/// `/latest/user-data` in every spelling a lenient server reads as it.
pub fn tencent_user_data() -> Vec<Case> {
    path_cases(
        "169.254.0.23",
        spellings("/latest", "user-data", "meta-data"),
    )
}

/// The versions of OpenStack's tree, and spellings a lenient server reads as one (or takes for
/// any: it need not check).
const OPENSTACK_VERSIONS: [&str; 27] = [
    "latest",
    "2018-08-27",
    "2017-02-22",
    "2016-10-06",
    "2016-06-30",
    "2015-10-15",
    "2013-10-17",
    "2013-04-04",
    "2012-08-10",
    "LATEST",
    "Latest",
    "latest.",
    "latest%20",
    "latest.%20",
    "%20latest",
    "%6Catest",
    "lat%65st",
    "%256Catest",
    "%EF%BD%8Catest",
    "%C1%ACatest",
    "latest;x",
    "2018-08-27.",
    "2018%2D08%2D27",
    "2099-01-01",
    "v1",
    "x",
    "...%2Flatest",
];

/// Huawei: the agency's `securitykey`, the user data and the password in every spelling (the
/// securitykey in every version), OpenStack's other documents, the EC2-style tree, writes; then
/// [`plain_cloud_cases`].
pub fn huawei() -> Vec<Case> {
    let mut cases: Vec<Case> = huawei_denied();
    let mut add = |name: String, bytes: Vec<u8>| cases.push((name, bytes));
    for target in [
        "/openstack",
        "/openstack/",
        "/openstack/latest",
        "/openstack/latest/",
        "/openstack/latest/meta_data.json",
        "/openstack/latest/network_data.json",
        "/openstack/latest/vendor_data.json",
        "/openstack/latest/vendor_data2.json",
        "/openstack/2018-08-27/meta_data.json",
        "/openstack/latest/meta_data.json?x=1",
        "/openstack/latest/meta_data.json?securitykey",
        "/openstack/latest/securitykey-x",
        "/openstack/latest/securitykeys",
        "/openstack/securitykey",
        "/openstack/latest/x/securitykey",
        "/latest/meta-data/",
        "/latest/meta-data/instance-id",
        "/latest/meta-data/iam/security-credentials/",
        "/latest/user-data",
        "/latest/user-data/",
        "/LATEST/User-Data",
        "/2009-04-04/user-data",
        "/1.0/user-data",
        "/latest/meta-data/../user-data",
        "/latest/meta-data/%2e%2e/user-data",
        "/latest/meta-data/..%2F..%2Fopenstack/latest/securitykey",
        "/latest/",
        "/",
    ] {
        add(format!("other: {target}"), get_with(target, ""));
    }
    for (name, line, headers, body) in [
        (
            "POST securitykey",
            "POST /openstack/latest/securitykey HTTP/1.1",
            "Content-Length: 2\r\n",
            "{}",
        ),
        (
            "POST password, chunked",
            "POST /openstack/latest/password HTTP/1.1",
            "Transfer-Encoding: chunked\r\n",
            "6\r\nsecret\r\n0\r\n\r\n",
        ),
        (
            "POST meta_data.json",
            "POST /openstack/latest/meta_data.json HTTP/1.1",
            "Content-Length: 0\r\n",
            "",
        ),
        (
            "PUT user_data",
            "PUT /openstack/latest/user_data HTTP/1.1",
            "Content-Length: 0\r\n",
            "",
        ),
    ] {
        add(format!("write: {name}"), raw(line, headers, body));
    }
    plain_cloud_cases(
        &mut add,
        "169.254.169.254",
        "/openstack/latest/meta_data.json",
        &[
            "/openstack/latest/securitykey",
            "/openstack/latest/user_data",
            "/openstack/latest/password",
        ],
    );
    cases
}

/// `/openstack/<version>/securitykey` in every version and every spelling, and `user_data` and
/// `password` in every spelling, in the latest and a dated version.
pub fn huawei_denied() -> Vec<Case> {
    let mut targets = Vec::new();
    for version in OPENSTACK_VERSIONS {
        for leaf in [
            "securitykey",
            "SECURITYKEY",
            "SecurityKey",
            "securitykey.",
            "securitykey%20",
            "securitykey/",
            "security%6Bey",
        ] {
            targets.push(format!("/openstack/{version}/{leaf}"));
        }
        targets.push(format!(
            "/openstack/{version}/meta_data.json/../securitykey"
        ));
    }
    targets.push("/openstack/latest/../2018-08-27/securitykey".to_owned());
    for version in ["latest", "2018-08-27"] {
        let dir = format!("/openstack/{version}");
        for leaf in ["securitykey", "user_data", "password"] {
            targets.extend(spellings(&dir, leaf, "meta_data.json"));
        }
    }
    path_cases("169.254.169.254", targets)
}

/// Exoscale: the user data in every spelling under `/1.0/` and `/latest/`, other paths, the token
/// flow it does not have, the password server's request header; then [`plain_cloud_cases`].
pub fn exoscale() -> Vec<Case> {
    let mut cases: Vec<Case> = exoscale_user_data();
    let mut add = |name: String, bytes: Vec<u8>| cases.push((name, bytes));
    for target in [
        "/1.0/meta-data/instance-id",
        "/1.0/meta-data/",
        "/1.0/meta-data",
        "/latest/meta-data/public-ipv4",
        "/latest/meta-data/",
        "/1.0/meta-data/user-data",
        "/1.0/meta-data/instance-id?x=1",
        "/1.0/meta-data/iam/security-credentials/role",
        "/1.0/user-data-x",
        "/1.0/",
        "/1.0",
        "/latest/",
        "/",
        "/2009-04-04/user-data",
        "/2009-04-04/meta-data/instance-id",
        "/1.1/user-data",
        "/latest/api/token",
        "/1.0/user-data/../meta-data/instance-id",
        "/1.0/meta-data/../../latest/user-data",
        "/openstack/latest/user_data",
    ] {
        add(format!("other: {target}"), get_with(target, ""));
    }
    add(
        "token PUT: AWS".into(),
        raw(
            "PUT /latest/api/token HTTP/1.1",
            "X-aws-ec2-metadata-token-ttl-seconds: 21600\r\n",
            "",
        ),
    );
    for target in ["/1.0/meta-data/instance-id", "/1.0/user-data"] {
        add(
            format!("header DomU_Request: {target}"),
            get_with(target, "DomU_Request: send_my_password\r\n"),
        );
    }
    plain_cloud_cases(
        &mut add,
        "169.254.169.254",
        "/1.0/meta-data/instance-id",
        &["/1.0/user-data", "/latest/user-data"],
    );
    cases
}

/// `/1.0/user-data` and `/latest/user-data` in every spelling a lenient server reads as them.
pub fn exoscale_user_data() -> Vec<Case> {
    let mut targets = spellings("/1.0", "user-data", "meta-data");
    targets.extend(spellings("/latest", "user-data", "meta-data"));
    path_cases("169.254.169.254", targets)
}

const LINODE_TOKEN: &str = "Metadata-Token: tok\r\n";
const LINODE_TTL: &str = "Metadata-Token-Expiry-Seconds: 60\r\n";

/// Linode: the user data in every spelling (some with the service's token too), the documents
/// beside it, other paths; the token flow: its PUT with TTLs in and out of range and malformed,
/// with forwarding headers and with AWS's and Alibaba's TTL headers; its endpoint in other
/// spellings, with other methods, and as a way to the user data; AWS's token endpoint, an
/// ordinary path here; reads with other clouds' token headers and a doubled token; then
/// [`plain_cloud_cases`].
pub fn linode() -> Vec<Case> {
    let mut cases: Vec<Case> = linode_user_data();
    let mut add = |name: String, bytes: Vec<u8>| cases.push((name, bytes));
    for target in [
        "/v1/user-data",
        "/V1/User-Data",
        "/v1/user-data.",
        "/v1/user-data/",
        "/v1/user%2Ddata",
        "/v1%2Fuser-data",
        "/v1/instance/../user-data",
        "/v1/token/../user-data",
    ] {
        add(
            format!("token read: {target}"),
            get_with(target, LINODE_TOKEN),
        );
    }
    for target in [
        "/v1/instance",
        "/v1/network",
        "/v1/ssh-keys",
        "/v1/instance/",
        "/v1/",
        "/v1",
        "/",
        "/v1/instance?x=1",
        "/v1/instance?user-data",
        "/v1/instance#user-data",
        "/v1/user-data-x",
        "/v1/instance/user-data",
        "/v1/user-data/x",
        "/v1/userdata",
        "/v1/user_data",
        "/v2/user-data",
        "/v2/instance",
        "/latest/user-data",
        "/latest/meta-data/",
        "/latest/api/token",
        "/openstack/latest/user_data",
        "/metadata/v1/user-data",
    ] {
        add(format!("other: {target}"), get_with(target, LINODE_TOKEN));
    }

    let ttl = "Metadata-Token-Expiry-Seconds";
    for (name, headers) in [
        ("ttl 60", LINODE_TTL.to_owned()),
        ("ttl 1", format!("{ttl}: 1\r\n")),
        ("ttl 86400", format!("{ttl}: 86400\r\n")),
        ("ttl 86401", format!("{ttl}: 86401\r\n")),
        ("ttl 0", format!("{ttl}: 0\r\n")),
        ("ttl 4294967356", format!("{ttl}: 4294967356\r\n")),
        ("ttl huge", format!("{ttl}: 99999999999999999999999999\r\n")),
        ("ttl -1", format!("{ttl}: -1\r\n")),
        ("ttl +60", format!("{ttl}: +60\r\n")),
        ("ttl 060", format!("{ttl}: 060\r\n")),
        ("ttl 60.0", format!("{ttl}: 60.0\r\n")),
        ("ttl 6e1", format!("{ttl}: 6e1\r\n")),
        ("ttl 0x3c", format!("{ttl}: 0x3c\r\n")),
        ("ttl 60s", format!("{ttl}: 60s\r\n")),
        ("ttl empty", format!("{ttl}:\r\n")),
        ("ttl missing", String::new()),
        ("ttl twice", format!("{ttl}: 5\r\n{ttl}: 86400\r\n")),
        ("ttl list", format!("{ttl}: 60, 86400\r\n")),
        ("ttl folded", format!("{ttl}:\r\n 60\r\n")),
        (
            "ttl lower case",
            "metadata-token-expiry-seconds: 60\r\n".to_owned(),
        ),
        ("ttl and token", format!("{LINODE_TOKEN}{LINODE_TTL}")),
        (
            "X-Forwarded-For",
            format!("{LINODE_TTL}X-Forwarded-For: 10.0.0.1\r\n"),
        ),
        (
            "Forwarded",
            format!("{LINODE_TTL}Forwarded: for=10.0.0.1\r\n"),
        ),
        ("X-Real-IP", format!("{LINODE_TTL}X-Real-IP: 10.0.0.1\r\n")),
        (
            "X-Forwarded-Host",
            format!("{LINODE_TTL}X-Forwarded-Host: 169.254.169.254\r\n"),
        ),
        (
            "AWS ttl",
            "X-aws-ec2-metadata-token-ttl-seconds: 21600\r\n".to_owned(),
        ),
        (
            "Alibaba ttl",
            "X-aliyun-ecs-metadata-token-ttl-seconds: 21600\r\n".to_owned(),
        ),
        (
            "AWS and Linode ttl",
            format!("X-aws-ec2-metadata-token-ttl-seconds: 21600\r\n{LINODE_TTL}"),
        ),
        (
            "Alibaba and Linode ttl",
            format!("X-aliyun-ecs-metadata-token-ttl-seconds: 21600\r\n{LINODE_TTL}"),
        ),
        (
            "AWS token",
            format!("X-aws-ec2-metadata-token: tok\r\n{LINODE_TTL}"),
        ),
        (
            "Alibaba token",
            format!("X-aliyun-ecs-metadata-token: tok\r\n{LINODE_TTL}"),
        ),
        (
            "X-Original-URL",
            format!("{LINODE_TTL}X-Original-URL: /v1/user-data\r\n"),
        ),
        (
            "X-HTTP-Method-Override",
            format!("{LINODE_TTL}X-HTTP-Method-Override: GET\r\n"),
        ),
    ] {
        add(
            format!("token PUT: {name}"),
            raw("PUT /v1/token HTTP/1.1", &headers, ""),
        );
    }
    let inner = "GET /v1/user-data HTTP/1.1\r\nHost: 169.254.169.254\r\n\r\n";
    for (name, headers, body) in [
        (
            "body",
            format!("{LINODE_TTL}Content-Length: 6\r\n"),
            "secret",
        ),
        (
            "chunked body",
            format!("{LINODE_TTL}Transfer-Encoding: chunked\r\n"),
            "6\r\nsecret\r\n0\r\n\r\n",
        ),
        (
            "body is a request",
            format!("{LINODE_TTL}Content-Length: {}\r\n", inner.len()),
            inner,
        ),
        (
            "CL.TE, a request after",
            format!(
                "{LINODE_TTL}Content-Length: {}\r\nTransfer-Encoding: chunked\r\n",
                5 + inner.len()
            ),
            &format!("0\r\n\r\n{inner}"),
        ),
    ] {
        add(
            format!("token PUT: {name}"),
            raw("PUT /v1/token HTTP/1.1", &headers, body),
        );
    }
    // The endpoint in other spellings, and as a way to somewhere else.
    for target in [
        "/v1/token/",
        "/v1/token//",
        "/v1//token",
        "//v1/token",
        "/V1/TOKEN",
        "/v1/Token",
        "/v1/token.",
        "/v1/token%20",
        "/v1/tok%65n",
        "/v1/token%2F",
        "/v1/token;x",
        "/v1/token?x=1",
        "/v1/token?",
        "/v1/token#x",
        "/v1/token%00",
        "/v1/./token",
        "/v1/instance/../token",
        "/v1%2Ftoken",
        "/v1/token/x",
        "/v1/tokens",
        "/v1/token/../user-data",
        "/v1/token/%2e%2e/user-data",
        "/v1/token%2F..%2Fuser-data",
        "/v1/token/..;/user-data",
        "/v1/token/../../latest/api/token",
        "/v1/user-data",
        "/v1/instance",
        "/v2/token",
        "/latest/api/token",
        "/latest/api/token/",
        "/latest/api/token/../../../v1/token",
        "http://169.254.169.254/v1/token",
        "http://169.254.169.254/v1/user-data",
    ] {
        add(
            format!("token endpoint: PUT {target}"),
            raw(&format!("PUT {target} HTTP/1.1"), LINODE_TTL, ""),
        );
    }
    // AWS's token endpoint is an ordinary path here, with any cloud's TTL header.
    for (name, headers) in [
        ("AWS ttl", "X-aws-ec2-metadata-token-ttl-seconds: 21600\r\n"),
        (
            "Alibaba ttl",
            "X-aliyun-ecs-metadata-token-ttl-seconds: 21600\r\n",
        ),
        ("no ttl", ""),
    ] {
        add(
            format!("AWS token PUT: {name}"),
            raw("PUT /latest/api/token HTTP/1.1", headers, ""),
        );
    }
    // The endpoint takes its PUT and nothing else: no read of it in any spelling. (`/v1/TOKEN`,
    // `/v1/token.`, `/v1/token%20` and `/v1/.../token` are the endpoint to a lenient server, so
    // the guard reads the endpoint leniently too, as deny patterns read paths.)
    for target in spellings("/v1", "token", "instance") {
        for method in ["GET", "HEAD"] {
            add(
                format!("token endpoint read: {method} {target}"),
                raw(&format!("{method} {target} HTTP/1.1"), LINODE_TOKEN, ""),
            );
        }
    }
    for (method, target, headers) in [
        ("GET", "/v1/token", ""),
        ("GET", "/v1/token", LINODE_TTL),
        ("HEAD", "/v1/token", ""),
        ("POST", "/v1/token", "Content-Length: 0\r\n"),
        ("DELETE", "/v1/token", ""),
        ("OPTIONS", "/v1/token", ""),
        ("PATCH", "/v1/token", "Content-Length: 0\r\n"),
        ("put", "/v1/token", LINODE_TTL),
        ("Put", "/v1/token", LINODE_TTL),
        ("PUT ", "/v1/token", LINODE_TTL),
    ] {
        add(
            format!("token method: {method:?} {target} {}", headers.trim_end())
                .trim_end()
                .to_owned(),
            raw(&format!("{method} {target} HTTP/1.1"), headers, ""),
        );
    }
    // Reads with a token: doubled, folded, beside other clouds' token headers.
    for (name, headers) in [
        ("token twice", "Metadata-Token: a\r\nMetadata-Token: b\r\n"),
        ("token list", "Metadata-Token: a, b\r\n"),
        ("token folded", "Metadata-Token: a\r\n b\r\n"),
        (
            "token folding a header",
            "Metadata-Token: tok\r\n X-Original-URL: /v1/user-data\r\n",
        ),
        (
            "token and AWS token",
            "Metadata-Token: tok\r\nX-aws-ec2-metadata-token: other\r\n",
        ),
        (
            "token and Alibaba token",
            "Metadata-Token: tok\r\nX-aliyun-ecs-metadata-token: other\r\n",
        ),
        ("ttl on a read", LINODE_TTL),
        (
            "AWS ttl on a read",
            "X-aws-ec2-metadata-token-ttl-seconds: 21600\r\n",
        ),
        (
            "token and X-Forwarded-For",
            "Metadata-Token: tok\r\nX-Forwarded-For: 10.0.0.1\r\n",
        ),
        (
            "token and Cookie",
            "Metadata-Token: tok\r\nCookie: user-data=1\r\n",
        ),
    ] {
        for target in ["/v1/instance", "/v1/user-data"] {
            add(
                format!("token header {name}: {target}"),
                get_with(target, headers),
            );
        }
    }
    for (name, bytes) in smuggling("/v1/instance", "GET /v1/user-data HTTP/1.1", LINODE_TOKEN) {
        add(format!("{name} (user-data, with token)"), bytes);
    }
    for (name, bytes) in smuggling("/v1/instance", "PUT /latest/api/token HTTP/1.1", LINODE_TTL) {
        add(format!("{name} (AWS token PUT)"), bytes);
    }
    plain_cloud_cases(
        &mut add,
        "169.254.169.254",
        "/v1/instance",
        &["/v1/user-data"],
    );
    cases
}

/// `/v1/user-data` in every spelling a lenient server reads as it, by way of the documents and
/// the token endpoint beside it too.
pub fn linode_user_data() -> Vec<Case> {
    let mut targets = spellings("/v1", "user-data", "instance");
    for beside in ["token", "ssh-keys", "network"] {
        targets.extend([
            format!("/v1/{beside}/../user-data"),
            format!("/v1/{beside}/%2e%2e/user-data"),
            format!("/v1/{beside}%2F..%2Fuser-data"),
            format!("/v1/{beside}/..;/user-data"),
        ]);
    }
    targets.extend(
        [
            "/v1/token/x/../../user-data",
            "/latest/api/token/../../../v1/user-data",
            "/v1/user-data%2F",
            "/v1/USER%2DDATA",
            "/v1./user-data.",
            "/v1%20/user-data%20",
        ]
        .map(str::to_owned),
    );
    path_cases("169.254.169.254", targets)
}

/// A GET case per target, named by it; a target listed twice is one case.
fn path_cases(host: &str, targets: Vec<String>) -> Vec<Case> {
    let mut seen: Vec<String> = Vec::new();
    let mut cases = Vec::new();
    for target in targets {
        if seen.contains(&target) {
            continue;
        }
        cases.push((format!("path: {target}"), get_at(host, &target, "")));
        seen.push(target);
    }
    cases
}

/// `%XX` of every byte of `c` in UTF-8.
fn escape_char(c: char) -> String {
    let mut buf = [0u8; 4];
    c.encode_utf8(&mut buf)
        .bytes()
        .map(|b| format!("%{b:02X}"))
        .collect()
}

/// Each segment of `path` with its first letter in upper case.
fn title_case(path: &str) -> String {
    path.split('/')
        .map(|segment| {
            let mut chars = segment.chars();
            chars.next().map_or_else(String::new, |first| {
                format!("{}{}", first.to_ascii_uppercase(), chars.as_str())
            })
        })
        .collect::<Vec<_>>()
        .join("/")
}

/// `{dir}/{leaf}` in every spelling a lenient server reads as it: case; trailing dots and spaces;
/// a letter escaped once, twice, as `%u`, full-width and as overlong UTF-8; a `-` or `_` escaped;
/// `/` escaped and `\`; dot segments raw and escaped every way, after `beside` (a name beside
/// the leaf in `dir`); doubled slashes; `;` parameters; queries and fragments, raw and escaped;
/// a NUL. `dir` is one segment or more (`/latest`); `leaf` starts with an ASCII letter.
fn spellings(dir: &str, leaf: &str, beside: &str) -> Vec<String> {
    let (parent, last) = dir.rsplit_once('/').unwrap_or(("", dir));
    let first = leaf.chars().next().expect("a leaf");
    let rest = &leaf[first.len_utf8()..];
    let code = u32::from(first);
    let byte = u8::try_from(code).expect("an ASCII letter");
    let full_width = char::from_u32(code - 0x21 + 0xFF01).expect("a full-width form");
    let last_first = last.chars().next().expect("a directory name");
    let last_rest = &last[last_first.len_utf8()..];
    let upper_dir = dir.to_ascii_uppercase();
    let upper_leaf = leaf.to_ascii_uppercase();
    let title = title_case(&format!("{dir}/{leaf}"));
    let joined = format!("{dir}/{leaf}");
    let escaped_slashes = format!("/{}", joined[1..].replace('/', "%2F"));
    let doubled = joined.replace('/', "//");
    let mut all = vec![
        joined.clone(),
        format!("{dir}/{upper_leaf}"),
        format!("{upper_dir}/{leaf}"),
        format!("{upper_dir}/{upper_leaf}"),
        title,
        format!("{dir}/{leaf}."),
        format!("{dir}/{leaf}%20"),
        format!("{dir}/{leaf}.%20"),
        format!("{dir}/{leaf}%2e"),
        format!("{dir}/{leaf}%2520"),
        format!("{dir}/{leaf}/"),
        format!("{dir}/{leaf}//"),
        format!("{dir}/.../{leaf}"),
        format!("{dir}/%20/{leaf}"),
        format!("{dir}/%2e/{leaf}"),
        format!("{dir}./{leaf}"),
        format!("{dir}%20/{leaf}"),
        format!("{parent}/%20{last}/{leaf}"),
        format!("{parent}/%{:02X}{last_rest}/{leaf}", u32::from(last_first)),
        format!("{dir}/%{byte:02X}{rest}"),
        format!("{dir}/%{byte:02x}{rest}"),
        format!("{dir}/%25{byte:02X}{rest}"),
        format!("{dir}/%u{code:04X}{rest}"),
        format!("{dir}/{}{rest}", escape_char(full_width)),
        format!(
            "{dir}/%{:02X}%{:02X}{rest}",
            0xC0 | (byte >> 6),
            0x80 | (byte & 0x3F)
        ),
        format!("{dir}%2F{leaf}"),
        format!("{dir}%2f{leaf}"),
        escaped_slashes,
        format!("{dir}%5C{leaf}"),
        format!("{dir}\\{leaf}"),
        format!("{dir}/./{leaf}"),
        format!("{dir}/{beside}/../{leaf}"),
        format!("{dir}/{beside}/%2e%2e/{leaf}"),
        format!("{dir}/{beside}/%2E%2E/{leaf}"),
        format!("{dir}/{beside}/.%2e/{leaf}"),
        format!("{dir}/{beside}/%252e%252e/{leaf}"),
        format!("{dir}/{beside}/%c0%ae%c0%ae/{leaf}"),
        format!("{dir}/{beside}/%u002e%u002e/{leaf}"),
        format!("{dir}/{beside}/%EF%BC%8E%EF%BC%8E/{leaf}"),
        format!("{dir}/{beside}/..;/{leaf}"),
        format!("{dir}/{beside}/..%20/{leaf}"),
        format!("{dir}/{beside}/.../../{leaf}"),
        format!("{dir}/{beside}\\..\\{leaf}"),
        format!("{dir}/{beside}%2F..%2F{leaf}"),
        format!("{dir}/{beside}/x/../../{leaf}"),
        format!("{parent}/x/../{last}/{leaf}"),
        format!("{dir}//{leaf}"),
        doubled,
        format!("/{joined}"),
        format!("{dir}/{leaf};x"),
        format!("{dir}/{leaf};"),
        format!("{dir};x/{leaf}"),
        format!("{dir}/{leaf}?x=1"),
        format!("{dir}/{leaf}?"),
        format!("{dir}/{beside}?/../{leaf}"),
        format!("{dir}/{leaf}%3Fx"),
        format!("{dir}/{leaf}#x"),
        format!("{dir}/{leaf}%23x"),
        format!("{dir}/{leaf}%00"),
    ];
    for separator in ['-', '_'] {
        if leaf.contains(separator) {
            let escaped = format!("%{:02X}", u32::from(separator));
            all.push(format!("{dir}/{}", leaf.replacen(separator, &escaped, 1)));
        }
    }
    let mut out: Vec<String> = Vec::new();
    for target in all {
        if !out.contains(&target) {
            out.push(target);
        }
    }
    out
}
