//! The control path: parsing a signaling message and verifying an access token.

use std::collections::BTreeMap;
use std::hint::black_box;
use std::time::SystemTime;

use criterion::Criterion;
use tern_server::auth::{Auth, Claims, Grants, unix_seconds};

fn control(c: &mut Criterion) {
    let offer = format!(
        r#"{{"type":"offer","sdp":"{}","tracks":[{{"mid":"0","source":"camera"}}],"req":2}}"#,
        "a=x\\r\\n".repeat(600)
    );
    c.bench_function("signaling_parse_4kb_offer", |b| {
        b.iter(|| tern_server::signaling::parse(black_box(&offer)))
    });

    let auth = Auth::new(&BTreeMap::from([("k".to_string(), "secret".to_string())]));
    let claims = Claims {
        iss: "k".into(),
        sub: "alice".into(),
        name: None,
        room: Some("demo".into()),
        grants: Grants {
            join: true,
            publish: true,
            subscribe: true,
            ..Default::default()
        },
        exp: unix_seconds(SystemTime::now()) + 3600,
        nbf: None,
        iat: None,
    };
    let token = auth.mint(&claims).expect("mints");
    let now = SystemTime::now();
    c.bench_function("token_verify", |b| {
        b.iter(|| auth.verify(black_box(&token), now))
    });
}

/// Runs the control-path benches.
fn main() {
    let mut c = Criterion::default().configure_from_args();
    control(&mut c);
    c.final_summary();
}
