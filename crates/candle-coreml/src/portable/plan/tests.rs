//! Load-time checks of the planner.

use crate::error::Error;
use crate::portable::testutil::build_program;

#[test]
fn every_unknown_op_is_reported_at_load() {
    let err = build_program(&[
        ("frobnicate", &[("x", "x")], "a"),
        ("relu", &[("x", "a")], "b"),
        ("defenestrate", &[("x", "b")], "c"),
    ])
    .unwrap_err();
    match err {
        Error::UnknownOps { function, ops } => {
            assert_eq!(function, "main");
            assert_eq!(
                ops,
                vec![
                    ("frobnicate".to_string(), "a".to_string()),
                    ("defenestrate".to_string(), "c".to_string())
                ]
            );
        }
        other => panic!("expected UnknownOps, got {other}"),
    }
}

#[test]
fn undefined_value_names_the_op() {
    let err = build_program(&[("relu", &[("x", "nowhere")], "a")]).unwrap_err();
    let msg = err.to_string();
    assert!(matches!(err, Error::InvalidOp { .. }), "{msg}");
    assert!(
        msg.contains("\"a\"") && msg.contains("relu") && msg.contains("nowhere"),
        "{msg}"
    );
}

#[test]
fn missing_required_input_names_the_op() {
    let err = build_program(&[("add", &[("x", "x")], "s")]).unwrap_err();
    assert!(err.to_string().contains("missing input \"y\""), "{err}");
}

#[test]
fn unknown_constexpr_ops_join_the_report() {
    let err = build_program(&[
        ("constexpr_frobnicate", &[("x", "x")], "a"),
        ("relu", &[("x", "a")], "b"),
        ("defenestrate", &[("x", "b")], "c"),
    ])
    .unwrap_err();
    match err {
        Error::UnknownOps { ops, .. } => assert_eq!(
            ops,
            vec![
                ("constexpr_frobnicate".to_string(), "a".to_string()),
                ("defenestrate".to_string(), "c".to_string())
            ]
        ),
        other => panic!("expected UnknownOps, got {other}"),
    }
}

#[test]
fn ops_declare_whether_they_fold() {
    let reg = crate::portable::ops::registry();
    let foldable = |op: &str| reg.get(op).map(|e| e.foldable);
    assert_eq!(foldable("add"), Some(true));
    for op in [
        "read_state",
        "write_state",
        "coreml_update_state",
        "random_normal",
        "random_uniform",
        "random_bernoulli",
        "random_categorical",
        crate::portable::fuse::SLICE_UPDATE_STATE,
    ] {
        assert_eq!(foldable(op), Some(false), "{op}");
    }
}
