use rand::SeedableRng;
use rand::rngs::SmallRng;

use super::*;

fn vars() -> Vec<String> {
    vec!["deviceid".to_owned(), "token".to_owned()]
}

fn render(t: &Template, values: &[String], seq: u64) -> String {
    let mut rng = SmallRng::seed_from_u64(7);
    let mut ctx = RenderContext {
        vars: values,
        seq,
        user_id: 42,
        rng: &mut rng,
        cookies: None,
    };
    t.render(&mut ctx)
}

#[test]
fn static_text_is_one_literal() {
    let t = Template::compile("/Test/V1", &vars()).unwrap();
    assert_eq!(t.as_static(), Some("/Test/V1"));
    assert_eq!(Template::compile("", &[]).unwrap().as_static(), Some(""));
    assert!(!t.is_integer());
}

#[test]
fn variables_and_builtins_render() {
    let t = Template::compile(
        "/d/{{ deviceid }}/{{seq}}/{{ user_id }}?t={{token}}",
        &vars(),
    )
    .unwrap();
    assert_eq!(t.as_static(), None);
    let values = vec!["dev-1".to_owned(), "tok".to_owned()];
    assert_eq!(render(&t, &values, 3), "/d/dev-1/3/42?t=tok");
}

#[test]
fn uuid_is_a_v4_uuid() {
    let t = Template::compile("{{ uuid }}", &[]).unwrap();
    let text = render(&t, &[], 0);
    let parsed = uuid::Uuid::parse_str(&text).unwrap();
    assert_eq!(parsed.get_version_num(), 4);
    assert_eq!(text, text.to_lowercase());
}

#[test]
fn times_render_now() {
    let before = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_millis();
    let ms: u128 = render(&Template::compile("{{ now_ms }}", &[]).unwrap(), &[], 0)
        .parse()
        .unwrap();
    let after = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_millis();
    assert!(before <= ms && ms <= after);
    let rfc = render(
        &Template::compile("{{ now_rfc3339 }}", &[]).unwrap(),
        &[],
        0,
    );
    let parsed = humantime::parse_rfc3339(&rfc).unwrap();
    let parsed_ms = parsed.duration_since(UNIX_EPOCH).unwrap().as_millis();
    assert!(
        parsed_ms + 1000 >= after && parsed_ms <= after + 1000,
        "{rfc}"
    );
}

#[test]
fn random_int_stays_in_range() {
    let t = Template::compile("{{ random_int(-2, 3) }}", &[]).unwrap();
    assert!(t.is_integer());
    let mut rng = SmallRng::seed_from_u64(1);
    let mut seen = std::collections::BTreeSet::new();
    for _ in 0..500 {
        let mut ctx = RenderContext {
            vars: &[],
            seq: 0,
            user_id: 0,
            rng: &mut rng,
            cookies: None,
        };
        let n: i64 = t.render(&mut ctx).parse().unwrap();
        assert!((-2..=3).contains(&n));
        seen.insert(n);
    }
    assert_eq!(seen.len(), 6);
}

#[test]
fn compile_errors_say_what_is_allowed() {
    let e = Template::compile("{{ nope }}", &vars()).unwrap_err();
    assert_eq!(
        e.0,
        "unknown name \"nope\" in template; built-ins: uuid, now_ms, now_rfc3339, \
         random_int(MIN, MAX), seq, user_id, cookie.NAME, env.NAME; variables: deviceid, token"
    );
    let e = Template::compile("a {{ uuid", &[]).unwrap_err();
    assert!(e.0.starts_with("unclosed \"{{\""), "{}", e.0);
    for bad in [
        "{{ random_int(3, 1) }}",
        "{{ random_int(1) }}",
        "{{ random_int(a, 2) }}",
        "{{ random_int 1, 2 }}",
    ] {
        let e = Template::compile(bad, &[]).unwrap_err();
        assert!(
            e.0.contains("expected random_int(MIN, MAX)"),
            "{bad}: {}",
            e.0
        );
    }
}

#[test]
fn json_template_renders_valid_json() {
    let token = Template::compile("{{ token }}", &vars()).unwrap();
    let json = JsonTemplate::Object(vec![
        ("token".to_owned(), JsonTemplate::Str(token)),
        (
            "ts".to_owned(),
            JsonTemplate::Str(Template::compile("{{ seq }}", &[]).unwrap()),
        ),
        (
            "n".to_owned(),
            JsonTemplate::Array(vec![
                JsonTemplate::Int(1),
                JsonTemplate::Float(2.5),
                JsonTemplate::Null,
                JsonTemplate::Bool(true),
            ]),
        ),
        (
            "s".to_owned(),
            JsonTemplate::Str(Template::literal("quote \" back \\ nl \n ctl \u{1}")),
        ),
    ]);
    assert!(!json.is_static());
    let mut rng = SmallRng::seed_from_u64(1);
    let values = vec![String::new(), "t\"1".to_owned()];
    let mut ctx = RenderContext {
        vars: &values,
        seq: 9,
        user_id: 0,
        rng: &mut rng,
        cookies: None,
    };
    let mut out = String::new();
    json.render_into(&mut ctx, &mut out);
    let parsed: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(
        parsed,
        serde_json::json!({"token": "t\"1", "ts": 9, "n": [1, 2.5, null, true], "s": "quote \" back \\ nl \n ctl \u{1}"})
    );
}

#[test]
fn form_encoding() {
    let mut out = String::new();
    form_urlencode_into(&mut out, "a b&c=d/é~*._-");
    assert_eq!(out, "a+b%26c%3Dd%2F%C3%A9%7E*._-");
}
