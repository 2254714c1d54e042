//! Azure cases: a pod allowed `/metadata/**` but not userData, a Key Vault token or a
//! user-assigned identity tries to reach them — case tricks (Azure reads paths in any case),
//! escaped letters, the instance document and its parents in JSON and text, duplicate keys,
//! `resource` in other spellings and other keys, identity selectors, the gate header, forwarding
//! headers, smuggling.

use super::clouds::{raw, smuggling};
use super::corpus::Case;

const META: &str = "Metadata: true\r\n";
const API: &str = "api-version=2021-02-01";
const TOKEN: &str = "/metadata/identity/oauth2/token";

fn get(target: &str) -> Vec<u8> {
    raw(&format!("GET {target} HTTP/1.1"), META, "")
}

pub fn cases() -> Vec<Case> {
    let mut cases: Vec<Case> = Vec::new();
    let mut add = |name: String, bytes: Vec<u8>| cases.push((name, bytes));

    // userData in every spelling, JSON and text.
    for path in [
        "/metadata/instance/compute/userData",
        "/METADATA/instance/compute/userData",
        "/metadata/Instance/Compute/UserData/",
        "/metadata/instance/compute/USERDATA",
        "/Metadata/INSTANCE/compute/userdata",
        "/metadata/instance/compute/userData.",
        "/metadata/instance/compute/userData%20",
        "/metadata/instance/compute/.../userData",
        "/metadata/instance/compute//userData",
        "/metadata/instance/compute/us%65rData",
        "/metadata/instance/compute/%55serData",
        "/metadata/instance/compute/userData%2F",
        "/metadata/instance/compute%2FuserData",
        "/metadata/instance/network/../compute/userData",
        "/metadata/instance/compute/userData;x",
        "/metadata/instance/compute/userData\\",
    ] {
        for q in ["", "&format=text", "&format=json"] {
            add(
                format!("userData: {path}?{API}{q}"),
                get(&format!("{path}?{API}{q}")),
            );
        }
    }

    // The instance document and its parents hold userData (JSON); text answers only leaves.
    for doc in [
        "/metadata/instance",
        "/metadata/instance/",
        "/metadata/INSTANCE",
        "/metadata/Instance/Compute/",
        "/metadata/instance/compute",
        "/metadata/instance/compute.",
        "/metadata/instance/compute%20",
        "/metadata/instance//compute",
    ] {
        for q in [
            "",
            "&format=json",
            "&format=text",
            "&format=TEXT",
            "&format=Json",
            "&format=text&format=json",
            "&format=json&format=text",
            "&format=text;format=json",
            "&format=text%26format%3Djson",
            "&format=text%20",
            "&Format=text",
            "&format=",
        ] {
            add(
                format!("document: {doc}?{API}{q}"),
                get(&format!("{doc}?{API}{q}")),
            );
        }
    }
    for target in [
        "/metadata?api-version=2021-02-01",
        "/metadata/?api-version=2021-02-01",
        "/metadata/instance?api-version=2021-02-01&api-version=2017-04-02",
        "/metadata/instance?api-version=2017-04-02&api-version=2021-02-01",
        "/metadata/instance?Api-Version=2021-02-01",
        "/metadata/instance?api%2Dversion=2021-02-01",
        "/metadata/instance?api-version=2021-02-01;format=json",
        "/metadata/instance",
        "/metadata/instance?",
        "/metadata/instance?api-version=latest",
        "/metadata/instance?api-version=2021-02-01-preview",
        "/metadata/instance?api-version=2021-02-01+",
        "/metadata/versions",
        "/metadata/versions?api-version=2021-02-01",
        "/metadata/instance/network?api-version=2021-02-01",
        "/metadata/attested/document?api-version=2021-02-01&nonce=1",
        "/metadata/scheduledevents?api-version=2020-07-01",
    ] {
        add(format!("query: {target}"), get(target));
    }

    // Tokens: Key Vault in other spellings, the resource in other keys, identity selectors.
    let token = format!("{TOKEN}?api-version=2018-02-01");
    for q in [
        "resource=https://vault.azure.net",
        "resource=https%3A%2F%2Fvault.azure.net",
        "resource=https%3a%2f%2fvault.azure.net%2f",
        "resource=%68ttps://vault.azure.net",
        "resource=https://%76ault.azure.net",
        "resource=HTTPS://VAULT.AZURE.NET/",
        "resource=https://Vault.Azure.Net",
        "resource=https://vault.azure.net/",
        "resource=https://vault.azure.net+",
        "resource=https://vault.azure.net%00",
        "resource=https://vault.azure.net%0d%0a",
        "resource=https://management.azure.com/&resource=https://vault.azure.net",
        "resource=https://vault.azure.net&resource=https://management.azure.com/",
        "resource=https://management.azure.com/;resource=https://vault.azure.net",
        "resource=https://management.azure.com/&Resource=https://vault.azure.net",
        "Resource=https://vault.azure.net",
        "RESOURCE=https://vault.azure.net",
        "resourc%65=https://vault.azure.net",
        "resource=https://management.azure.com/&resource%20=https://vault.azure.net",
        "resource=https://management.azure.com/&client_id=x",
        "resource=https://management.azure.com/&client_id=",
        "resource=https://management.azure.com/&object_id=x",
        "resource=https://management.azure.com/&msi_res_id=x",
        "resource=https://management.azure.com/&mi_res_id=x",
        "resource=https://management.azure.com/&Client_Id=x",
        "resource=https://management.azure.com/&client%5Fid=x",
        "resource=https://management.azure.com/&clientid=x",
        "resource=https://management.azure.com/;client_id=x",
        "resource=https://management.azure.com/&client_id=x&client_id=y",
        "resource=https://management.azure.com/",
    ] {
        add(format!("token: {q}"), get(&format!("{token}&{q}")));
        add(
            format!("token/: {q}"),
            get(&format!("{TOKEN}/?api-version=2018-02-01&{q}")),
        );
    }
    add(
        "token: upper-case path".into(),
        get("/METADATA/IDENTITY/OAUTH2/TOKEN?api-version=2018-02-01&resource=https://vault.azure.net"),
    );
    add(
        "token: no api-version".into(),
        get(&format!("{TOKEN}?resource=https://vault.azure.net")),
    );
    add(
        "token: client_id after an allowed request".into(),
        [
            get(&format!("{token}&resource=https://management.azure.com/")),
            get(&format!(
                "{token}&resource=https://management.azure.com/&client_id=x"
            )),
        ]
        .concat(),
    );
    add(
        "token: vault after an allowed request".into(),
        [
            get(&format!("{token}&resource=https://management.azure.com/")),
            get(&format!("{token}&resource=https://vault.azure.net")),
        ]
        .concat(),
    );

    // The gate header.
    let user_data = format!("GET /metadata/instance/compute/userData?{API}&format=text HTTP/1.1");
    let allowed = format!("GET /metadata/instance/compute/vmId?{API}&format=text HTTP/1.1");
    for (name, headers) in [
        ("missing", ""),
        ("True", "Metadata: True\r\n"),
        ("doubled", "Metadata: true\r\nMetadata: true\r\n"),
        ("list", "Metadata: true, true\r\n"),
        ("other value too", "Metadata: true\r\nMetadata: false\r\n"),
        ("obs-fold", "Metadata:\r\n true\r\n"),
        ("no space", "metadata:true\r\n"),
    ] {
        add(
            format!("gate {name}: userData"),
            raw(&user_data, headers, ""),
        );
        add(format!("gate {name}: allowed"), raw(&allowed, headers, ""));
    }
    for header in [
        "X-Forwarded-For: 10.0.0.1\r\n",
        "Forwarded: for=10.0.0.1\r\n",
        "X-Forwarded-Host: 169.254.169.254\r\n",
        "X-Real-IP: 10.0.0.1\r\n",
    ] {
        add(
            format!("forwarding header: {}", header.trim_end()),
            raw(&allowed, &format!("{META}{header}"), ""),
        );
    }
    add(
        "method: POST scheduledevents".into(),
        raw(
            "POST /metadata/scheduledevents?api-version=2020-07-01 HTTP/1.1",
            &format!("{META}Content-Length: 2\r\n"),
            "{}",
        ),
    );
    add(
        "method: POST issuecredential".into(),
        raw(
            "POST /metadata/identity/issuecredential?api-version=2018-02-01 HTTP/1.1",
            &format!("{META}Content-Length: 0\r\n"),
            "",
        ),
    );
    for (name, bytes) in smuggling(
        &format!("/metadata/instance/compute/vmId?{API}&format=text"),
        &format!("GET /metadata/instance?{API} HTTP/1.1"),
        META,
    ) {
        add(format!("{name} (document)"), bytes);
    }
    for (name, bytes) in smuggling(
        &format!("/metadata/instance/compute/vmId?{API}&format=text"),
        &format!("GET {TOKEN}?api-version=2018-02-01&resource=https://vault.azure.net HTTP/1.1"),
        META,
    ) {
        add(format!("{name} (vault)"), bytes);
    }
    cases
}
