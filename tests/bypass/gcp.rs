//! GCP cases: a pod allowed everything but kube-env, startup-script and identity tokens tries to
//! reach them — recursive reads of their parents in every spelling, query tricks, the legacy
//! trees (which need no header) in every spelling, case and trailing-dot variants, gate and
//! forwarding headers, smuggling.

use super::clouds::{raw, smuggling};
use super::corpus::Case;

const FLAVOR: &str = "Metadata-Flavor: Google\r\n";
const V1: &str = "/computeMetadata/v1";

fn get(target: &str) -> Vec<u8> {
    raw(&format!("GET {target} HTTP/1.1"), FLAVOR, "")
}

pub fn cases() -> Vec<Case> {
    let mut cases: Vec<Case> = Vec::new();
    let mut add = |name: String, bytes: Vec<u8>| cases.push((name, bytes));

    // Recursive reads of every parent of a denied path, with every truthy spelling.
    let parents = [
        "/".to_owned(),
        "/computeMetadata/".to_owned(),
        V1.to_owned(),
        format!("{V1}/"),
        format!("{V1}/instance"),
        format!("{V1}/instance/"),
        format!("{V1}/instance/attributes"),
        format!("{V1}/instance/attributes/"),
        format!("{V1}/instance/service-accounts/"),
        format!("{V1}/instance/service-accounts/default/"),
        format!("{V1}/instance/Attributes/"),
        format!("{V1}/instance/attributes./"),
        format!("{V1}/instance/.../attributes/"),
    ];
    for parent in &parents {
        for value in ["true", "True", "TRUE", "1", "yes", "on", "t"] {
            add(
                format!("recursive={value} on {parent}"),
                get(&format!("{parent}?recursive={value}")),
            );
        }
    }

    // Query tricks on the attributes directory.
    let attrs = format!("{V1}/instance/attributes/");
    for q in [
        "recursive",
        "recursive=",
        "%72ecursive=true",
        "recursiv%65=true",
        "RECURSIVE=true",
        "Recursive=true",
        "recursive=%74rue",
        "recursive=tru%65",
        "recursive=true&recursive=false",
        "recursive=false&recursive=true",
        "recursive=false;recursive=true",
        "recursive=true;",
        "alt=json;recursive=true",
        "recursive=true+",
        "recursive=+true",
        "recursive=%20true",
        "recursive=true%20",
        "recursive=%2Btrue",
        "recursive=true%00",
        "recursive=%0atrue",
        "recursive=true#",
        "recursive=true%23",
        "recursive=true%26",
        "&recursive=true",
        "recursive=true&&alt=json",
        "x=1&recursive=true",
        "recursive=false%26recursive%3Dtrue",
        "alt=json%26recursive%3Dtrue",
        "alt=json&recursive=true",
        "recursive=true&alt=text",
        "wait_for_change=true&recursive=true",
        "wait_for_change=true&recursive=true&timeout_sec=1",
        "recursive=true&timeout_sec=1%26recursive%3Dtrue",
        "alt=json",
        "alt=JSON&recursive=true",
        "recursive=false",
        "recursive=true&recursive=true",
        "recursive=%2574rue",
    ] {
        add(
            format!("query: attributes/?{q}"),
            get(&format!("{attrs}?{q}")),
        );
    }
    add(
        "query: kube-env?alt=json".into(),
        get(&format!("{V1}/instance/attributes/kube-env?alt=json")),
    );
    add(
        "query: kube-env?alt=text".into(),
        get(&format!("{V1}/instance/attributes/kube-env?alt=text")),
    );
    add(
        "query: instance/?recursive=true&alt=json".into(),
        get(&format!("{V1}/instance/?recursive=true&alt=json")),
    );
    add(
        "query: ? alone".into(),
        get(&format!("{V1}/instance/attributes/?")),
    );
    add(
        "query: ?? doubled".into(),
        get(&format!("{V1}/instance/attributes/??recursive=true")),
    );
    add(
        "query: %3F in path".into(),
        get(&format!("{V1}/instance/attributes/%3Frecursive=true")),
    );

    // Identity tokens, in every spelling, with and without an audience.
    for target in [
        "/instance/service-accounts/default/identity?audience=x",
        "/instance/service-accounts/default/identity?audience=x&format=full",
        "/instance/service-accounts/default/IDENTITY?audience=x",
        "/instance/service-accounts/default/identity/?audience=x",
        "/instance/service-accounts/default/identity.?audience=x",
        "/instance/service-accounts/default/identity%20?audience=x",
        "/instance/service-accounts/default/.../identity?audience=x",
        "/instance/Service-Accounts/default/identity?audience=x",
        "/instance/service-accounts/sa@p.iam.gserviceaccount.com/identity?audience=x",
        "/instance/service-accounts/default/identity?Audience=x",
        "/instance/service-accounts/default/identity?audience=x&audience=y",
        "/instance/service-accounts/default/identit%79?audience=x",
        "/instance/service-accounts/default/token?scopes=x%26audience%3Dy",
    ] {
        add(format!("identity: {target}"), get(&format!("{V1}{target}")));
    }

    // kube-env and startup-script, in every spelling.
    for target in [
        "/instance/attributes/kube-env",
        "/instance/attributes/KUBE-ENV",
        "/instance/Attributes/kube-env",
        "/instance/attributes/kube-env.",
        "/instance/attributes/kube-env%20",
        "/instance/attributes/kube-env/",
        "/instance/attributes/.../kube-env",
        "/instance/attributes//kube-env",
        "/instance/attributes/kube%2Denv",
        "/instance/attributes/kube-env%2F",
        "/instance/attributes/x/../kube-env",
        "/instance/attributes/kube-env;x",
        "/instance/attributes/startup-script",
        "/instance/attributes/Startup-Script.",
    ] {
        add(format!("path: {target}"), get(&format!("{V1}{target}")));
    }
    add(
        "path: v1. then kube-env".into(),
        get("/computeMetadata/v1./instance/attributes/kube-env"),
    );
    add(
        "path: V1 then kube-env".into(),
        get("/computeMetadata/V1/instance/attributes/kube-env"),
    );
    add(
        "path: V1 recursive".into(),
        get("/computeMetadata/V1/instance/?recursive=true"),
    );
    add(
        "path: computemetadata recursive".into(),
        get("/computemetadata/v1/instance/?recursive=true"),
    );

    // The legacy trees: they need no header, so they are refused whatever the spelling.
    for target in [
        "/0.1/meta-data/attributes/kube-env",
        "/0.1/meta-data/attributes/",
        "/0.1/meta-data/service-accounts/default/acquire",
        "/0.1/",
        "/0.1",
        "//0.1/meta-data/attributes/kube-env",
        "/0%2E1/meta-data/attributes/kube-env",
        "/0.1/meta-data/../meta-data/attributes/kube-env",
        "/computeMetadata/v1beta1/instance/attributes/kube-env",
        "/computeMetadata/v1beta1/instance/?recursive=true",
        "/computeMetadata/v1beta1/",
        "/computeMetadata/V1BETA1/instance/attributes/kube-env",
        "/COMPUTEMETADATA/v1beta1/instance/attributes/kube-env",
        "/computeMetadata//v1beta1/instance/attributes/kube-env",
        "/computeMetadata/v1bet%61/instance/attributes/kube-env",
        "/computeMetadata/v1beta1%2Finstance/attributes/kube-env",
        "/computeMetadata/v1/../v1beta1/instance/attributes/kube-env",
    ] {
        add(format!("legacy: {target}"), get(target));
        add(
            format!("legacy, no header: {target}"),
            raw(&format!("GET {target} HTTP/1.1"), "", ""),
        );
    }
    add(
        "legacy: X-Google-Metadata-Request".into(),
        raw(
            "GET /computeMetadata/v1beta1/instance/attributes/kube-env HTTP/1.1",
            "X-Google-Metadata-Request: True\r\n",
            "",
        ),
    );

    // The gate header: missing, doubled, folded, in another case.
    let kube_env = format!("GET {V1}/instance/attributes/kube-env HTTP/1.1");
    let allowed = format!("GET {V1}/instance/hostname HTTP/1.1");
    for (name, headers) in [
        ("missing", ""),
        (
            "doubled",
            "Metadata-Flavor: Google\r\nMetadata-Flavor: Google\r\n",
        ),
        ("list", "Metadata-Flavor: Google, Google\r\n"),
        ("lower-case value", "Metadata-Flavor: google\r\n"),
        ("obs-fold", "Metadata-Flavor:\r\n Google\r\n"),
        ("empty", "Metadata-Flavor:\r\n"),
        (
            "another value too",
            "Metadata-Flavor: Google\r\nMetadata-Flavor: x\r\n",
        ),
        ("no space", "metadata-flavor:Google\r\n"),
    ] {
        add(
            format!("gate {name}: kube-env"),
            raw(&kube_env, headers, ""),
        );
        add(format!("gate {name}: allowed"), raw(&allowed, headers, ""));
    }

    // Forwarding headers: refused outright.
    for header in [
        "X-Forwarded-For: 10.0.0.1\r\n",
        "Forwarded: for=10.0.0.1;host=metadata.google.internal\r\n",
        "X-Forwarded-Host: metadata.google.internal\r\n",
        "X-Real-IP: 10.0.0.1\r\n",
        "X-Forwarded-Proto: https\r\n",
        "x-forwarded-for:\r\n 10.0.0.1\r\n",
    ] {
        add(
            format!("forwarding header: {}", header.trim_end()),
            raw(&allowed, &format!("{FLAVOR}{header}"), ""),
        );
    }

    // Writes and other methods.
    for (line, headers) in [
        (
            format!("PUT {V1}/instance/guest-attributes/x/y HTTP/1.1"),
            "Content-Length: 1\r\n",
        ),
        (
            format!("PUT {V1}/instance/attributes/kube-env HTTP/1.1"),
            "Content-Length: 0\r\n",
        ),
        (
            format!("POST {V1}/instance/attributes/?recursive=true HTTP/1.1"),
            "Content-Length: 0\r\n",
        ),
        (
            format!("HEAD {V1}/instance/attributes/?recursive=true HTTP/1.1"),
            "",
        ),
    ] {
        add(
            format!("method: {line}"),
            raw(&line, &format!("{FLAVOR}{headers}"), "x"),
        );
    }

    // Smuggling a denied request behind an allowed one.
    for (name, bytes) in smuggling(
        &format!("{V1}/instance/hostname"),
        &format!("GET {V1}/instance/attributes/?recursive=true HTTP/1.1"),
        FLAVOR,
    ) {
        add(format!("{name} (recursive)"), bytes);
    }
    for (name, bytes) in smuggling(
        &format!("{V1}/instance/hostname"),
        "GET /computeMetadata/v1beta1/instance/attributes/kube-env HTTP/1.1",
        "",
    ) {
        add(format!("{name} (legacy, no header)"), bytes);
    }
    cases
}
