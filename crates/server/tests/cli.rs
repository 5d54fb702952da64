//! The `berth` command line on the real binary: subcommands, help, version, exit codes.

use std::process::{Command, Output};

fn berth(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_berth"))
        .args(args)
        .output()
        .expect("run berth")
}

fn stdout(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

#[test]
fn version_is_one_line_with_a_newline() {
    let expected = format!("berth {}\n", env!("CARGO_PKG_VERSION"));
    for args in [&["version"][..], &["--version"][..]] {
        let out = berth(args);
        assert_eq!(out.status.code(), Some(0), "{args:?}");
        assert_eq!(stdout(&out), expected, "{args:?}");
    }
}

#[test]
fn help_names_every_subcommand_and_the_exit_codes() {
    let out = berth(&["--help"]);
    assert_eq!(out.status.code(), Some(0));
    let text = stdout(&out);
    for word in [
        "serve",
        "check-config",
        "version",
        "Exit status:",
        "2  usage error",
    ] {
        assert!(text.contains(word), "{word} missing from:\n{text}");
    }
}

#[test]
fn each_subcommand_has_help() {
    for args in [
        &["help", "serve"][..],
        &["serve", "--help"][..],
        &["help", "check-config"][..],
        &["check-config", "--help"][..],
    ] {
        let out = berth(args);
        assert_eq!(out.status.code(), Some(0), "{args:?}");
        let text = stdout(&out);
        assert!(text.contains("Usage: berth"), "{args:?}: {text}");
        assert!(
            text.contains("[CONFIG]") || text.contains("<CONFIG>"),
            "{text}"
        );
    }
}

#[test]
fn usage_errors_exit_with_2() {
    for args in [
        &[][..],
        &["nonsense"][..],
        &["check-config"][..],
        &["serve", "a.yml", "b.yml"][..],
        &["version", "extra"][..],
    ] {
        let out = berth(args);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {}", stderr(&out));
        assert!(
            stderr(&out).contains("Usage:"),
            "{args:?}: {}",
            stderr(&out)
        );
    }
}

#[test]
fn a_missing_file_is_a_failure_not_a_usage_error() {
    let out = berth(&["check-config", "/nonexistent/berth.yml"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out).contains("/nonexistent/berth.yml"),
        "{}",
        stderr(&out)
    );
}
