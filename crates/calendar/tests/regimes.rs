//! Regime presets (D-SLA-3, D-SLA-10): what each shipped preset holds, and that a malformed
//! preset is refused with an error that says what is wrong and where.
#![allow(clippy::unwrap_used)]

use std::path::PathBuf;

use redress_calendar::{
    ClockStart, ExcludedTime, Grade, Period, PeriodUnit, REGIME_NAMES, Regime, RegimeError, SlaPolicy,
};

fn preset(id: &str) -> Regime {
    Regime::preset(id).unwrap()
}

fn periods(regime: &Regime) -> Vec<(&str, ClockStart, Period, Vec<Period>)> {
    regime
        .clocks()
        .iter()
        .map(|c| (c.id(), c.starts(), c.period(), c.extensions().iter().map(|e| e.to()).collect()))
        .collect()
}

#[test]
fn shipped_presets_are_the_files_in_data_regimes() {
    let ids: Vec<String> = Regime::presets().iter().map(|r| r.id().to_owned()).collect();
    assert_eq!(ids, REGIME_NAMES);
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("data/regimes");
    let mut on_disk = Vec::new();
    for entry in std::fs::read_dir(&dir).unwrap() {
        let path = entry.unwrap().path();
        let stem = path.file_stem().unwrap().to_str().unwrap().to_owned();
        let text = std::fs::read_to_string(&path).unwrap();
        // A preset's id is its file name, and the embedded copy is the file.
        assert_eq!(Regime::from_toml(&stem, &text), Ok(preset(&stem)), "{}", path.display());
        on_disk.push(stem);
    }
    on_disk.sort();
    let mut shipped = REGIME_NAMES.map(str::to_owned).to_vec();
    shipped.sort();
    assert_eq!(on_disk, shipped);
    assert_eq!(Regime::preset("fca"), None);
}

#[test]
fn cbirc_is_todays_policy() {
    let cbirc = preset("cbirc");
    assert_eq!((cbirc.calendar_name(), cbirc.time_zone()), ("cn", chrono_tz::Asia::Shanghai));
    // Nothing changes for the services: the preset yields the policy they run on.
    assert_eq!(cbirc.sla_policy(), Some(SlaPolicy::default()));
    assert_eq!(cbirc.grade_targets(Grade::Urgent), Some(SlaPolicy::default().urgent));
    assert_eq!(
        periods(&cbirc),
        vec![
            (
                "regulatory_decision",
                ClockStart::Acceptance,
                Period::CalendarDays(15),
                vec![Period::CalendarDays(30), Period::CalendarDays(60)]
            ),
            ("review_window", ClockStart::Decision, Period::CalendarDays(30), vec![]),
            ("review_decision", ClockStart::ReviewRequest, Period::CalendarDays(30), vec![]),
            ("referral_forwarding", ClockStart::Referral, Period::WorkingDays(3), vec![]),
        ]
    );
    // Extensions keep the clock's unit: calendar days.
    assert_eq!(cbirc.clock("regulatory_decision").unwrap().unit(), PeriodUnit::CalendarDays);
}

#[test]
fn samr_fca_and_cfpb() {
    let samr = preset("samr");
    assert_eq!((samr.calendar_name(), samr.time_zone()), ("cn", chrono_tz::Asia::Shanghai));
    assert_eq!(
        periods(&samr),
        vec![
            ("acceptance_decision", ClockStart::Receipt, Period::WorkingDays(7), vec![]),
            ("mediation", ClockStart::Acceptance, Period::WorkingDays(45), vec![]),
        ]
    );
    assert_eq!(samr.clock("mediation").unwrap().excluded_time(), [ExcludedTime::TestingOrAppraisal]);
    assert!(samr.clock("acceptance_decision").unwrap().excluded_time().is_empty());

    let fca = preset("fca-disp");
    assert_eq!((fca.calendar_name(), fca.time_zone()), ("gb-eng", chrono_tz::Europe::London));
    assert_eq!(
        periods(&fca),
        vec![
            // Eight calendar weeks.
            ("final_response", ClockStart::Receipt, Period::CalendarDays(56), vec![]),
            (
                "payment_services_final_response",
                ClockStart::Receipt,
                Period::WorkingDays(15),
                vec![Period::WorkingDays(35)]
            ),
            ("summary_resolution", ClockStart::Receipt, Period::WorkingDays(3), vec![]),
        ]
    );
    // Business days stay business days when extended.
    assert_eq!(fca.clock("payment_services_final_response").unwrap().unit(), PeriodUnit::WorkingDays);

    let cfpb = preset("cfpb");
    assert_eq!((cfpb.calendar_name(), cfpb.time_zone()), ("us", chrono_tz::America::New_York));
    assert_eq!(
        periods(&cfpb),
        vec![
            ("company_response", ClockStart::Receipt, Period::CalendarDays(15), vec![]),
            ("final_response", ClockStart::Receipt, Period::CalendarDays(60), vec![]),
        ]
    );

    // Only a regime that grades complaints and has a decision clock yields a policy.
    for regime in [samr, fca, cfpb] {
        assert_eq!(regime.sla_policy(), None, "{}", regime.id());
        assert_eq!(regime.grade_targets(Grade::General), None);
    }
}

#[test]
fn period_units() {
    for period in [Period::Hours(2), Period::WorkingDays(3), Period::CalendarDays(4)] {
        assert_eq!(
            PeriodUnit::of(period).period(9),
            match period {
                Period::Hours(_) => Period::Hours(9),
                Period::WorkingDays(_) => Period::WorkingDays(9),
                Period::CalendarDays(_) => Period::CalendarDays(9),
            }
        );
    }
}

const VALID: &str = r#"
id = "test"
name = "test regime"
calendar = "gb-eng"
time_zone = "Europe/London"

[[clocks]]
id = "final_response"
starts = "receipt"
period = { WorkingDays = 15 }

[[clocks.extensions]]
to = { WorkingDays = 35 }
when = "holding reply sent"
"#;

fn invalid(message: &str) -> Result<Regime, RegimeError> {
    Err(RegimeError::Invalid { source_name: "test.toml".to_owned(), message: message.to_owned() })
}

fn parse(text: &str) -> Result<Regime, RegimeError> {
    Regime::from_toml("test.toml", text)
}

fn parse_error(text: &str) -> String {
    match parse(text) {
        Err(RegimeError::Parse { source_name, message }) if source_name == "test.toml" => message,
        other => panic!("expected a parse error, got {other:?}"),
    }
}

#[test]
fn a_valid_preset_parses() {
    let regime = parse(VALID).unwrap();
    assert_eq!(regime.id(), "test");
    assert_eq!(regime.clocks().len(), 1);
    let clock = &regime.clocks()[0];
    assert_eq!(clock.extensions()[0].when(), "holding reply sent");
    assert_eq!(clock.description(), "");
    assert_eq!(regime.source(), "");

    // Weeks are calendar weeks.
    let weeks = VALID.replace("{ WorkingDays = 15 }", "{ Weeks = 2 }").replace("{ WorkingDays = 35 }", "{ Weeks = 5 }");
    let clock = parse(&weeks).unwrap().clocks()[0].clone();
    assert_eq!((clock.period(), clock.extensions()[0].to()), (Period::CalendarDays(14), Period::CalendarDays(35)));
}

#[test]
fn malformed_presets_are_refused_with_a_clear_error() {
    let cases: [(&str, &str, &str); 11] = [
        ("id = \"test\"", "id = \"Test Regime\"", "id \"Test Regime\" is not lowercase letters, digits and hyphens"),
        ("name = \"test regime\"", "name = \" \"", "regime test: name is empty"),
        ("calendar = \"gb-eng\"", "calendar = \"uk\"", "regime test: calendar \"uk\" is not one of cn, gb-eng, us"),
        (
            "time_zone = \"Europe/London\"",
            "time_zone = \"GMT+8\"",
            "regime test: time zone \"GMT+8\" is not an IANA zone name",
        ),
        (
            "id = \"final_response\"",
            "id = \"Final response\"",
            "regime test: clock id \"Final response\" is not snake_case",
        ),
        ("{ WorkingDays = 15 }", "{ WorkingDays = 0 }", "regime test: clock final_response: period is 0 working days"),
        (
            "{ WorkingDays = 35 }",
            "{ CalendarDays = 49 }",
            "regime test: clock final_response: extension to 49 calendar days is not in working days, the clock's unit",
        ),
        (
            "{ WorkingDays = 35 }",
            "{ WorkingDays = 15 }",
            "regime test: clock final_response: extension to 15 working days is not longer than 15 working days",
        ),
        (
            "{ WorkingDays = 35 }",
            "{ Weeks = 5 }",
            "regime test: clock final_response: extension to 35 calendar days is not in working days, the clock's unit",
        ),
        (
            "{ WorkingDays = 15 }",
            "{ Weeks = 1000000000 }",
            "regime test: clock final_response: period of 1000000000 weeks is too long",
        ),
        (
            "starts = \"receipt\"",
            "starts = \"receipt\"\nexcluded_time = [\"testing_or_appraisal\", \"testing_or_appraisal\"]",
            "regime test: clock final_response: excluded time lists a reason twice",
        ),
    ];
    for (from, to, message) in cases {
        assert!(VALID.contains(from), "{from}");
        assert_eq!(parse(&VALID.replacen(from, to, 1)), invalid(message), "{to}");
    }

    let twice =
        format!("{VALID}\n[[clocks]]\nid = \"final_response\"\nstarts = \"receipt\"\nperiod = {{ Hours = 1 }}\n");
    assert_eq!(parse(&twice), invalid("regime test: clock final_response is defined twice"));
    let second_extension = format!("{VALID}\n[[clocks.extensions]]\nto = {{ WorkingDays = 30 }}\n");
    assert_eq!(
        parse(&second_extension),
        invalid("regime test: clock final_response: extension to 30 working days is not longer than 35 working days")
    );
    let no_clocks = &VALID[..VALID.find("[[clocks]]").unwrap()];
    assert_eq!(parse(no_clocks), invalid("regime test: has no clocks"));
    let zero_grade = format!(
        "{no_clocks}[grades]\ngeneral = {{ first_response = {{ Hours = 0 }}, resolution = {{ WorkingDays = 7 }} }}\n\
         important = {{ first_response = {{ Hours = 8 }}, resolution = {{ WorkingDays = 5 }} }}\n\
         urgent = {{ first_response = {{ Hours = 2 }}, resolution = {{ WorkingDays = 3 }} }}\n\
         major = {{ first_response = {{ Hours = 1 }}, resolution = {{ WorkingDays = 1 }} }}\n{}",
        &VALID[VALID.find("[[clocks]]").unwrap()..]
    );
    assert_eq!(parse(&zero_grade), invalid("regime test: grade general first response is 0 hours"));
}

#[test]
fn presets_that_are_not_the_expected_shape_are_refused_with_the_line() {
    // A unit the regimes do not know (VALID begins with a newline: `period` is on line 10).
    let message = parse_error(&VALID.replace("{ WorkingDays = 15 }", "{ BusinessDays = 15 }"));
    assert!(message.starts_with("line 10: unknown variant `BusinessDays`"), "{message}");
    // A clock start that is not an event the clocks know.
    let message = parse_error(&VALID.replace("starts = \"receipt\"", "starts = \"filing\""));
    assert!(message.starts_with("line 9: unknown variant `filing`"), "{message}");
    // A misspelt field is refused, not ignored.
    let message = parse_error(&VALID.replace("period =", "periods ="));
    assert!(message.contains("unknown field `periods`"), "{message}");
    // A required field is missing.
    let message = parse_error(&VALID.replace("time_zone = \"Europe/London\"\n", ""));
    assert!(message.contains("missing field `time_zone`"), "{message}");
    // Not TOML at all.
    let message = parse_error("id = ");
    assert!(message.starts_with("line 1: "), "{message}");
    // Errors name the preset.
    assert_eq!(
        parse("id = ").unwrap_err().to_string(),
        format!("cannot parse regime test.toml: {}", parse_error("id = "))
    );
    assert_eq!(
        parse(&VALID.replace("\"gb-eng\"", "\"uk\"")).unwrap_err().to_string(),
        "invalid regime test.toml: regime test: calendar \"uk\" is not one of cn, gb-eng, us"
    );
}
