//! The README promises commands, flags, environment variables and files: every one must exist.

use std::collections::BTreeSet;
use std::path::Path;
use std::process::Command;

fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

fn readme() -> String {
    std::fs::read_to_string(root().join("README.md")).expect("README.md")
}

/// Lines inside ``` fenced blocks.
fn code_lines(text: &str) -> Vec<String> {
    let mut inside = false;
    let mut out = Vec::new();
    for line in text.lines() {
        if line.trim_start().starts_with("```") {
            inside = !inside;
            continue;
        }
        if inside {
            out.push(line.to_string());
        }
    }
    out
}

/// Every `inline code` span.
fn inline_code(text: &str) -> Vec<String> {
    text.split('`').skip(1).step_by(2).map(str::to_string).collect()
}

fn help(args: &[&str]) -> String {
    let out = Command::new(env!("CARGO_BIN_EXE_contiguity-operator"))
        .args(args)
        .output()
        .expect("run --help");
    assert!(out.status.success(), "{args:?} --help failed");
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[test]
fn every_make_target_in_the_readme_exists() {
    let makefile = std::fs::read_to_string(root().join("Makefile")).expect("Makefile");
    let targets: BTreeSet<&str> = makefile
        .lines()
        .filter_map(|l| l.split_once(':'))
        .map(|(t, _)| t.trim())
        .filter(|t| !t.contains(' '))
        .collect();
    let text = readme();
    let mut used = BTreeSet::new();
    for line in code_lines(&text).iter().chain(inline_code(&text).iter()) {
        let words: Vec<&str> = line.split_whitespace().collect();
        for w in words.windows(2) {
            if w[0] == "make" && !w[1].starts_with('-') && !w[1].starts_with('#') {
                used.insert(
                    w[1].trim_matches(|c: char| !c.is_ascii_alphanumeric() && c != '-')
                        .to_string(),
                );
            }
        }
    }
    assert!(
        used.contains("demo") && used.contains("test"),
        "the two set-up commands are missing: {used:?}"
    );
    for t in &used {
        assert!(
            targets.contains(t.as_str()),
            "README uses `make {t}` but the Makefile has no such target"
        );
    }
}

#[test]
fn every_flag_and_env_var_in_the_readme_is_real() {
    let run_help = help(&["run", "--help"]);
    let text = readme();
    let mut flags = 0;
    let bench_source = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/benches/converge.rs"))
        .expect("benches/converge.rs");
    for code in inline_code(&text) {
        if let Some(args) = code.strip_prefix("BENCH_ARGS=") {
            // Flags of the converge bench (`make bench BENCH_ARGS=...`): clap derives each from
            // a field name or names it with `long = "..."`.
            for word in args
                .trim_matches('"')
                .split_whitespace()
                .filter(|w| w.starts_with("--"))
            {
                let name = word.trim_start_matches('-');
                let field = name.replace('-', "_");
                assert!(
                    bench_source.contains(&format!("    {field}: "))
                        || bench_source.contains(&format!("long = \"{name}\"")),
                    "README names {word} for the bench, which benches/converge.rs does not define"
                );
            }
            continue;
        }
        for word in code.split(|c: char| c.is_whitespace() || c == '/') {
            let word = word.trim_matches(|c: char| c == ',' || c == '`');
            if word.starts_with("--") && word.len() > 2 && !word.contains('=') && !word.contains('.') {
                if ["--out", "--chart-out", "--docs-out"].contains(&word) {
                    assert!(help(&["crdgen", "--help"]).contains(word), "crdgen has no {word}");
                } else if ["--set", "--from-literal", "--server-side", "--help"].contains(&word) {
                    continue; // helm / kubectl flags
                } else {
                    assert!(
                        run_help.contains(&format!("{word} ")) || run_help.contains(&format!("{word}\n")),
                        "README names {word}, which `run` does not have"
                    );
                    flags += 1;
                }
            }
        }
    }
    assert!(flags >= 15, "only {flags} flags checked");
    // Every environment variable of the configuration table.
    let table: Vec<&str> = text.lines().filter(|l| l.starts_with("| `--")).collect();
    for row in table {
        let cells: Vec<&str> = row.split('|').collect();
        for var in inline_code(cells[2]) {
            for v in var.split(" / ") {
                assert!(
                    run_help.contains(&format!("env: {v}")),
                    "README names env var {v}, which `run` does not read"
                );
            }
        }
    }
}

#[test]
fn every_repository_path_in_the_readme_exists() {
    let text = readme();
    let mut checked = 0;
    for code in inline_code(&text) {
        let looks_like_path = [
            "src/",
            "deploy",
            "charts/",
            "health/",
            "crds/",
            "docs/",
            "tests/",
            "hack/",
            "Dockerfile",
        ]
        .iter()
        .any(|p| code.starts_with(p));
        if looks_like_path && !code.contains(' ') && !code.contains('…') {
            assert!(
                root().join(code.trim_end_matches('/')).exists(),
                "README names {code}, which does not exist"
            );
            checked += 1;
        }
    }
    assert!(checked >= 10, "only {checked} paths checked");
}
