//! The recorded AWS label traces of spec §4.3, as data: each step and the labels after it.

use crate::fixture::{tok, Fixture};

enum Step {
    Create(&'static str),
    Put(&'static str, Option<&'static [&'static str]>),
    /// label, move to vN, remove from vN (1-based version numbers).
    Stage(&'static str, Option<usize>, Option<usize>),
}

fn run(steps: &[(Step, &str)]) {
    let mut f = Fixture::new();
    let mut n_tokens = 0;
    for (i, (step, expect)) in steps.iter().enumerate() {
        let v = |f: &Fixture, n: Option<usize>| n.map(|n| f.created[n - 1].clone());
        match step {
            Step::Create(value) => {
                f.create("trace", Some(value)).expect("create");
            }
            Step::Put(value, stages) => {
                n_tokens += 1;
                f.put("trace", &tok(n_tokens), value, *stages).expect("put");
            }
            Step::Stage(label, to, from) => {
                let (to, from) = (v(&f, *to), v(&f, *from));
                f.stage("trace", label, to.as_deref(), from.as_deref()).expect("stage");
            }
        }
        assert_eq!(f.trace("trace"), *expect, "after step {}", i + 1);
    }
    f.verify_ok();
    let before = f.trace("trace");
    f.reopen();
    assert_eq!(f.trace("trace"), before, "labels survive a restart");
}

#[test]
fn trace_a_default_put() {
    run(&[
        (Step::Create("S0"), "v1[AWSCURRENT]"),
        (Step::Put("S1", None), "v1[AWSPREVIOUS] v2[AWSCURRENT]"),
        (Step::Put("S2", None), "v1[] v2[AWSPREVIOUS] v3[AWSCURRENT]"),
        (Step::Put("S3", None), "v1[] v2[] v3[AWSPREVIOUS] v4[AWSCURRENT]"),
    ]);
}

#[test]
fn trace_b1_custom_labels_move() {
    run(&[
        (Step::Create("S0"), "v1[AWSCURRENT]"),
        (Step::Put("S1", Some(&["one", "two", "three"])), "v1[AWSCURRENT] v2[one,three,two]"),
        (Step::Put("S2", Some(&["one", "two", "four"])), "v1[AWSCURRENT] v2[three] v3[four,one,two]"),
    ]);
}

#[test]
fn trace_b2_put_takes_every_label() {
    run(&[
        (Step::Create("S0"), "v1[AWSCURRENT]"),
        (Step::Put("S1", Some(&["one", "two", "three"])), "v1[AWSCURRENT] v2[one,three,two]"),
        (Step::Put("S2", Some(&["one", "two", "three", "four"])), "v1[AWSCURRENT] v2[] v3[four,one,three,two]"),
    ]);
}

#[test]
fn trace_c_rotation_promotion() {
    run(&[
        (Step::Create("S1"), "v1[AWSCURRENT]"),
        (Step::Put("S2", Some(&["AWSPENDING"])), "v1[AWSCURRENT] v2[AWSPENDING]"),
        (Step::Stage("AWSCURRENT", Some(2), Some(1)), "v1[AWSPREVIOUS] v2[AWSCURRENT,AWSPENDING]"),
        (Step::Put("S3", Some(&["AWSPENDING"])), "v1[AWSPREVIOUS] v2[AWSCURRENT] v3[AWSPENDING]"),
        (Step::Stage("AWSCURRENT", Some(3), Some(2)), "v1[] v2[AWSPREVIOUS] v3[AWSCURRENT,AWSPENDING]"),
    ]);
}

/// A default Put that takes AWSCURRENT from a version also holding AWSPENDING takes AWSPENDING
/// off it too (LocalStack's AWS-recorded test_update_secret_version_stages_current_pending).
#[test]
fn trace_f_default_put_after_rotation_promotion() {
    run(&[
        (Step::Create("S1"), "v1[AWSCURRENT]"),
        (Step::Put("S2", Some(&["AWSPENDING"])), "v1[AWSCURRENT] v2[AWSPENDING]"),
        (Step::Stage("AWSCURRENT", Some(2), Some(1)), "v1[AWSPREVIOUS] v2[AWSCURRENT,AWSPENDING]"),
        (Step::Put("S3", None), "v1[] v2[AWSPREVIOUS] v3[AWSCURRENT]"),
    ]);
}

#[test]
fn trace_d_explicit_current_and_custom() {
    run(&[
        (Step::Create("SS"), "v1[AWSCURRENT]"),
        (Step::Put("S1", Some(&["AWSCURRENT", "PUT0"])), "v1[AWSPREVIOUS] v2[AWSCURRENT,PUT0]"),
        (Step::Put("S2", Some(&["AWSPENDING", "PUT1"])), "v1[AWSPREVIOUS] v2[AWSCURRENT,PUT0] v3[AWSPENDING,PUT1]"),
        (Step::Stage("AWSCURRENT", Some(3), Some(2)), "v1[] v2[AWSPREVIOUS,PUT0] v3[AWSCURRENT,AWSPENDING,PUT1]"),
        (
            Step::Put("S3", Some(&["AWSPENDING", "PUT2"])),
            "v1[] v2[AWSPREVIOUS,PUT0] v3[AWSCURRENT,PUT1] v4[AWSPENDING,PUT2]",
        ),
        (
            Step::Stage("AWSCURRENT", Some(4), Some(3)),
            "v1[] v2[PUT0] v3[AWSPREVIOUS,PUT1] v4[AWSCURRENT,AWSPENDING,PUT2]",
        ),
    ]);
}

#[test]
fn trace_e_custom_label_removal() {
    run(&[
        (Step::Create("SS"), "v1[AWSCURRENT]"),
        (Step::Put("S1", Some(&["PENDING"])), "v1[AWSCURRENT] v2[PENDING]"),
        (Step::Stage("AWSCURRENT", Some(2), Some(1)), "v1[AWSPREVIOUS] v2[AWSCURRENT,PENDING]"),
        (Step::Stage("PENDING", None, Some(2)), "v1[AWSPREVIOUS] v2[AWSCURRENT]"),
    ]);
}

#[test]
fn get_secret_value_follows_awscurrent_at_once() {
    let mut f = Fixture::new();
    f.create("rot", Some("old")).unwrap();
    f.put("rot", &tok(1), "new", Some(&["AWSPENDING"])).unwrap();
    assert_eq!(f.get_string("rot").unwrap(), "old");
    let (v1, v2) = (f.created[0].clone(), f.created[1].clone());
    f.stage("rot", "AWSCURRENT", Some(&v2), Some(&v1)).unwrap();
    assert_eq!(f.get_string("rot").unwrap(), "new");
    let (id, _) = f.get("rot", None, Some("AWSPREVIOUS")).unwrap();
    assert_eq!(id, v1);
}
