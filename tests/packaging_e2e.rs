//! Packaging, end to end: the Helm chart (lint, values schema, server-side dry-run, install on the
//! real control plane), the deploy/ kustomize base (equal to a fresh render), the operator run
//! with exactly the chart's RBAC (a TokenRequest token for the chart's ServiceAccount), and the
//! GitOps health checks (the Argo CD Lua scripts and the real kstatus library) on status objects
//! that the operator produced.
//!
//! Needs: the test tools (`tests/control-plane/build.sh`: kubectl, helm, the control plane), Go
//! (the kstatus program in tests/packaging/ is built once and cached under target/packaging/)
//! and a Lua 5.1 interpreter, `lua5.1` (Debian package lua5.1; Argo CD runs health checks as
//! Lua 5.1), or the interpreter named by $LUA.

mod support;

use contiguity_operator::contiguity::fingerprint_of;
use contiguity_operator::crd::{LeaseFailover, NumberLease};
use contiguity_operator::sandbox::{Sandbox, SandboxConfig, SandboxHandle};
use serde::Deserialize;
use serde_json::{Value, json};
use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Output, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};
use support::*;

const T: Duration = Duration::from_secs(60);
/// Release and namespace deploy/ is rendered with.
const DEPLOY_RELEASE: &str = "contiguity-operator";
const DEPLOY_NAMESPACE: &str = "contiguity-system";

// ---------------------------------------------------------------------------------------------
// Helpers: processes, helm, kubectl, YAML
// ---------------------------------------------------------------------------------------------

/// Runs blocking work without starving the async runtime of a multi-thread test.
fn blocking<R>(f: impl FnOnce() -> R) -> R {
    match tokio::runtime::Handle::try_current() {
        Ok(h) if h.runtime_flavor() == tokio::runtime::RuntimeFlavor::MultiThread => tokio::task::block_in_place(f),
        _ => f(),
    }
}

fn output(cmd: &mut Command, input: Option<&str>) -> Output {
    use std::io::Write;
    blocking(|| {
        cmd.stdin(if input.is_some() { Stdio::piped() } else { Stdio::null() })
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let mut child = cmd.spawn().unwrap_or_else(|e| panic!("cannot run {cmd:?}: {e}"));
        if let Some(input) = input {
            child
                .stdin
                .take()
                .expect("stdin")
                .write_all(input.as_bytes())
                .expect("write stdin");
        }
        child.wait_with_output().expect("wait for the command")
    })
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

/// stdout of a command that must succeed.
fn must(out: Output, what: &str) -> String {
    assert!(
        out.status.success(),
        "{what} failed ({}):\nstdout:\n{}\nstderr:\n{}",
        out.status,
        text(&out.stdout),
        text(&out.stderr)
    );
    text(&out.stdout)
}

fn chart() -> PathBuf {
    repo_root().join("charts/contiguity-operator")
}

/// This process's scratch directory, target/packaging/runs/PID/. Directories of test processes
/// that are gone are removed on first use (they hold a few small files each).
fn run_dir() -> &'static Path {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        let runs = repo_root().join("target/packaging/runs");
        if let Ok(entries) = std::fs::read_dir(&runs) {
            for e in entries.flatten() {
                let pid = e.file_name().to_string_lossy().into_owned();
                if !Path::new("/proc").join(&pid).exists() {
                    let _ = std::fs::remove_dir_all(e.path());
                }
            }
        }
        let dir = runs.join(std::process::id().to_string());
        std::fs::create_dir_all(&dir).expect("create target/packaging/runs/PID");
        dir
    })
}

/// A new scratch directory.
fn scratch(name: &str) -> PathBuf {
    let dir = run_dir().join(format!("{name}-{:08x}", rand::random::<u32>()));
    std::fs::create_dir_all(&dir).expect("create scratch dir");
    dir
}

/// helm with its state under target/ (never the user's), talking to the test control plane
/// when `cluster` is set.
fn helm(args: &[&str], cluster: bool) -> Output {
    let home = repo_root().join("target/packaging/helm-home");
    let mut cmd = Command::new(tools_dir().join("helm"));
    cmd.args(args)
        .env("HELM_CACHE_HOME", home.join("cache"))
        .env("HELM_CONFIG_HOME", home.join("config"))
        .env("HELM_DATA_HOME", home.join("data"));
    if cluster {
        cmd.env("KUBECONFIG", &control_plane().info.kubeconfig);
    } else {
        cmd.env("KUBECONFIG", "/dev/null");
    }
    output(&mut cmd, None)
}

fn set_args(sets: &[&str]) -> Vec<String> {
    sets.iter()
        .flat_map(|s| ["--set".to_string(), (*s).to_string()])
        .collect()
}

/// `helm template` of the chart; panics when it fails.
fn render(release: &str, ns: &str, sets: &[&str]) -> String {
    let chart = chart();
    let mut args = vec![
        "template",
        release,
        chart.to_str().expect("utf-8 path"),
        "--namespace",
        ns,
    ];
    let sets = set_args(sets);
    args.extend(sets.iter().map(String::as_str));
    must(helm(&args, false), &format!("helm template {sets:?}"))
}

/// The YAML documents of a multi-document stream, as JSON values (empty documents dropped).
fn docs(yaml: &str) -> Vec<Value> {
    serde_yaml::Deserializer::from_str(yaml)
        .map(|d| Value::deserialize(d).expect("valid YAML"))
        .filter(|v| !v.is_null())
        .collect()
}

fn find<'a>(objs: &'a [Value], kind: &str, name: &str) -> &'a Value {
    objs.iter()
        .find(|o| o["kind"] == kind && o["metadata"]["name"] == name)
        .unwrap_or_else(|| panic!("no {kind} {name} among {:?}", ids(objs)))
}

fn find_kind<'a>(objs: &'a [Value], kind: &str) -> Vec<&'a Value> {
    objs.iter().filter(|o| o["kind"] == kind).collect()
}

/// kind/namespace/name of each object.
fn ids(objs: &[Value]) -> BTreeSet<String> {
    objs.iter()
        .map(|o| {
            format!(
                "{}/{}/{}",
                o["kind"].as_str().unwrap_or(""),
                o["metadata"]["namespace"].as_str().unwrap_or(""),
                o["metadata"]["name"].as_str().unwrap_or("")
            )
        })
        .collect()
}

/// The operator container of a Deployment.
fn container(dep: &Value) -> &Value {
    &dep["spec"]["template"]["spec"]["containers"][0]
}

/// The plain `value` env vars of the operator container.
fn env_values(dep: &Value) -> BTreeMap<String, String> {
    container(dep)["env"]
        .as_array()
        .expect("env")
        .iter()
        .filter_map(|e| Some((e["name"].as_str()?.to_string(), e["value"].as_str()?.to_string())))
        .collect()
}

fn kubectl(args: &[&str]) -> Output {
    blocking(|| control_plane().kubectl(args))
}

fn kubectl_in(args: &[&str], input: &str) -> Output {
    blocking(|| control_plane().kubectl_stdin(args, input))
}

/// kubectl as another identity (a kubeconfig file).
fn kubectl_as(kubeconfig: &Path, args: &[&str]) -> Output {
    let mut cmd = Command::new(tools_dir().join("kubectl"));
    cmd.env("KUBECONFIG", kubeconfig).args(args);
    output(&mut cmd, None)
}

/// An object as the API server returns it (what Argo CD and Flux read).
fn get_json(kind: &str, ns: &str, name: &str) -> Value {
    serde_json::from_str(&must(
        kubectl(&["get", kind, name, "-n", ns, "-o", "json"]),
        &format!("get {kind} {ns}/{name}"),
    ))
    .expect("JSON object")
}

fn label_namespace(ns: &str, labels: &[&str]) {
    let mut args = vec!["label", "namespace", ns, "--overwrite"];
    args.extend_from_slice(labels);
    must(kubectl(&args), "label namespace");
}

const RESTRICTED: [&str; 4] = [
    "pod-security.kubernetes.io/enforce=restricted",
    "pod-security.kubernetes.io/enforce-version=latest",
    "pod-security.kubernetes.io/warn=restricted",
    "pod-security.kubernetes.io/warn-version=latest",
];

/// A stand-in for the Prometheus Operator's ServiceMonitor CRD, with the real schema of the
/// fields the chart sets (and nothing else, so strict field validation catches a typo).
const SERVICE_MONITOR_CRD: &str = r#"
apiVersion: apiextensions.k8s.io/v1
kind: CustomResourceDefinition
metadata:
  name: servicemonitors.monitoring.coreos.com
spec:
  group: monitoring.coreos.com
  names: {kind: ServiceMonitor, listKind: ServiceMonitorList, plural: servicemonitors, singular: servicemonitor}
  scope: Namespaced
  versions:
    - name: v1
      served: true
      storage: true
      schema:
        openAPIV3Schema:
          type: object
          properties:
            spec:
              type: object
              required: [selector]
              properties:
                endpoints:
                  type: array
                  items:
                    type: object
                    properties:
                      port: {type: string}
                      path: {type: string}
                      interval: {type: string, pattern: '^(0|(([0-9]+)y)?(([0-9]+)w)?(([0-9]+)d)?(([0-9]+)h)?(([0-9]+)m)?(([0-9]+)s)?(([0-9]+)ms)?)$'}
                      scrapeTimeout: {type: string, pattern: '^(0|(([0-9]+)y)?(([0-9]+)w)?(([0-9]+)d)?(([0-9]+)h)?(([0-9]+)m)?(([0-9]+)s)?(([0-9]+)ms)?)$'}
                namespaceSelector:
                  type: object
                  properties:
                    any: {type: boolean}
                    matchNames: {type: array, items: {type: string}}
                selector:
                  type: object
                  properties:
                    matchLabels: {type: object, additionalProperties: {type: string}}
"#;

fn install_service_monitor_crd() {
    static DONE: OnceLock<()> = OnceLock::new();
    DONE.get_or_init(|| {
        must(
            kubectl_in(&["apply", "--server-side", "-f", "-"], SERVICE_MONITOR_CRD),
            "install the ServiceMonitor CRD stand-in",
        );
        must(
            kubectl(&[
                "wait",
                "--for=condition=Established",
                "--timeout=60s",
                "crd/servicemonitors.monitoring.coreos.com",
            ]),
            "ServiceMonitor CRD established",
        );
    });
}

/// Values that switch every optional object on.
const ALL_FEATURES: [&str; 7] = [
    "contiguity.token=contiguity_sk_packaging_test",
    "replicaCount=2",
    "networkPolicy.enabled=true",
    "networkPolicy.egress.restrict=true",
    "metrics.serviceMonitor.enabled=true",
    "logLevel=info\\,contiguity_operator=debug",
    "podDisruptionBudget.minAvailable=1",
];

// ---------------------------------------------------------------------------------------------
// Chart: lint, schema, rendering
// ---------------------------------------------------------------------------------------------

#[test]
fn helm_lint_passes_in_every_mode() {
    let chart = chart();
    let chart = chart.to_str().expect("utf-8 path");
    let modes: [&[&str]; 3] = [&[], &["watchNamespaces={team-a,team-b}"], &ALL_FEATURES];
    for sets in modes {
        let mut args = vec!["lint", "--strict", chart];
        let sets = set_args(sets);
        args.extend(sets.iter().map(String::as_str));
        let out = must(helm(&args, false), &format!("helm lint {sets:?}"));
        assert!(out.contains("1 chart(s) linted, 0 chart(s) failed"), "{out}");
        assert!(!out.contains("[WARNING]") && !out.contains("[ERROR]"), "{out}");
    }
}

#[test]
fn values_schema_refuses_unknown_and_invalid_values() {
    let chart = chart();
    let cases: [(&str, &str); 9] = [
        ("replicas=2", "additional properties 'replicas' not allowed"),
        ("contiguity.tokn=x", "additional properties 'tokn' not allowed"),
        ("logFormat=xml", "/logFormat"),
        ("resyncInterval=10min", "/resyncInterval"),
        ("watchNamespaces={Team_A}", "/watchNamespaces/0"),
        ("contiguity.baseUrl=api.contiguity.com", "/contiguity/baseUrl"),
        ("reconcileConcurrency=0", "/reconcileConcurrency"),
        ("image.pullPolicy=Sometimes", "/image/pullPolicy"),
        ("metrics.port=70000", "/metrics/port"),
    ];
    for (set, expected) in cases {
        let out = helm(&["template", "x", chart.to_str().expect("utf-8"), "--set", set], false);
        let err = text(&out.stderr);
        assert!(!out.status.success(), "--set {set} was accepted");
        assert!(err.contains(expected), "--set {set}: expected {expected:?} in {err}");
    }
    let out = helm(
        &[
            "template",
            "x",
            chart.to_str().expect("utf-8"),
            "--set",
            "contiguity.token=a",
            "--set",
            "contiguity.existingSecret=b",
        ],
        false,
    );
    assert!(!out.status.success());
    assert!(
        text(&out.stderr).contains("set contiguity.token or contiguity.existingSecret, not both"),
        "{}",
        text(&out.stderr)
    );
}

/// Lines of every Role / ClusterRole rule: each `- apiGroups:` must follow a comment line.
fn assert_rules_commented(yaml: &str, what: &str) {
    let mut in_rules = false;
    let mut prev = "";
    let mut rules = 0;
    for line in yaml.lines() {
        let t = line.trim();
        if t == "rules:" {
            in_rules = true;
        } else if !line.starts_with(' ') && !t.is_empty() {
            in_rules = false;
        }
        if in_rules && t.starts_with("- apiGroups:") {
            rules += 1;
            assert!(
                prev.starts_with('#'),
                "{what}: rule without a comment above it:\n{line}"
            );
        }
        if !t.is_empty() {
            prev = t;
        }
    }
    assert!(rules > 0, "{what}: no RBAC rules rendered");
}

/// Verbs a rule grants, by "group/resource".
fn granted(objs: &[Value], kind: &str) -> BTreeMap<String, BTreeSet<String>> {
    let mut out: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for role in find_kind(objs, kind) {
        for rule in role["rules"].as_array().expect("rules") {
            for g in rule["apiGroups"].as_array().expect("apiGroups") {
                for r in rule["resources"].as_array().expect("resources") {
                    let key = format!("{}/{}", g.as_str().unwrap_or(""), r.as_str().unwrap_or(""));
                    for v in rule["verbs"].as_array().expect("verbs") {
                        out.entry(key.clone())
                            .or_default()
                            .insert(v.as_str().unwrap_or("").to_string());
                    }
                }
            }
        }
    }
    out
}

#[test]
fn rendered_rbac_is_least_privilege_and_every_rule_says_why() {
    let expected_operator: BTreeMap<&str, &[&str]> = BTreeMap::from([
        ("contiguity.com/numberleases", &["get", "list", "watch", "patch"][..]),
        ("contiguity.com/leasefailovers", &["get", "list", "watch", "patch"][..]),
        ("contiguity.com/numberleases/status", &["patch"][..]),
        ("contiguity.com/leasefailovers/status", &["patch"][..]),
        ("/secrets", &["get", "list", "watch"][..]),
        ("events.k8s.io/events", &["create"][..]),
    ]);
    let as_sets = |m: &BTreeMap<&str, &[&str]>| -> BTreeMap<String, BTreeSet<String>> {
        m.iter()
            .map(|(k, v)| (k.to_string(), v.iter().map(|s| s.to_string()).collect()))
            .collect()
    };

    // Cluster-wide mode (the default).
    let yaml = render("rel", "ops", &[]);
    assert_rules_commented(&yaml, "default render");
    assert!(!yaml.contains("\"*\""), "no wildcards in RBAC");
    let objs = docs(&yaml);
    let cr = find(&objs, "ClusterRole", "rel-contiguity-operator");
    assert_eq!(
        granted(std::slice::from_ref(cr), "ClusterRole"),
        as_sets(&expected_operator)
    );
    let crb = find(&objs, "ClusterRoleBinding", "rel-contiguity-operator");
    assert_eq!(crb["subjects"][0]["name"], "rel-contiguity-operator");
    assert_eq!(crb["subjects"][0]["namespace"], "ops");
    let le = find(&objs, "Role", "rel-contiguity-operator-leader-election");
    assert_eq!(le["metadata"]["namespace"], "ops");
    let rules = le["rules"].as_array().expect("rules");
    assert_eq!(rules.len(), 2);
    assert_eq!(rules[0]["resourceNames"], json!(["rel-contiguity-operator"]));
    assert_eq!(rules[0]["verbs"], json!(["get", "update"]));
    assert_eq!(rules[1]["verbs"], json!(["create"]));
    assert!(rules[1].get("resourceNames").is_none());
    assert_eq!(find_kind(&objs, "Role").len(), 1, "only the leader-election Role");

    // Namespaced mode: the same rules in a Role per watched namespace, no cluster-wide grant.
    let yaml = render("rel", "ops", &["watchNamespaces={team-a,team-b}"]);
    assert_rules_commented(&yaml, "namespaced render");
    let objs = docs(&yaml);
    assert!(find_kind(&objs, "ClusterRole").is_empty() && find_kind(&objs, "ClusterRoleBinding").is_empty());
    for ns in ["team-a", "team-b"] {
        let role = objs
            .iter()
            .find(|o| o["kind"] == "Role" && o["metadata"]["namespace"] == ns)
            .unwrap_or_else(|| panic!("no Role in {ns}"));
        assert_eq!(granted(std::slice::from_ref(role), "Role"), as_sets(&expected_operator));
        let rb = objs
            .iter()
            .find(|o| o["kind"] == "RoleBinding" && o["metadata"]["namespace"] == ns)
            .unwrap_or_else(|| panic!("no RoleBinding in {ns}"));
        assert_eq!(rb["roleRef"]["name"], role["metadata"]["name"]);
        assert_eq!(rb["subjects"][0]["namespace"], "ops");
    }
    let dep = find(&objs, "Deployment", "rel-contiguity-operator");
    assert_eq!(
        env_values(dep).get("WATCH_NAMESPACES").map(String::as_str),
        Some("team-a,team-b")
    );

    // rbac.create=false: no RBAC objects at all.
    let objs = docs(&render("rel", "ops", &["rbac.create=false"]));
    for kind in ["ClusterRole", "ClusterRoleBinding", "Role", "RoleBinding"] {
        assert!(
            find_kind(&objs, kind).is_empty(),
            "{kind} rendered with rbac.create=false"
        );
    }
}

#[test]
fn deployment_is_restricted_and_configures_the_operator_through_its_env_vars() {
    let objs = docs(&render("rel", "ops", &[]));
    let dep = find(&objs, "Deployment", "rel-contiguity-operator");
    let pod = &dep["spec"]["template"]["spec"];
    let c = container(dep);
    // Restricted Pod Security profile.
    assert_eq!(pod["securityContext"]["runAsNonRoot"], true);
    assert_eq!(pod["securityContext"]["runAsUser"], 65532);
    assert_eq!(pod["securityContext"]["seccompProfile"]["type"], "RuntimeDefault");
    assert_eq!(c["securityContext"]["allowPrivilegeEscalation"], false);
    assert_eq!(c["securityContext"]["readOnlyRootFilesystem"], true);
    assert_eq!(c["securityContext"]["runAsNonRoot"], true);
    assert_eq!(c["securityContext"]["runAsUser"], 65532);
    assert_eq!(c["securityContext"]["capabilities"]["drop"], json!(["ALL"]));
    assert_eq!(c["securityContext"]["seccompProfile"]["type"], "RuntimeDefault");
    // Probes on the metrics port; resources.
    assert_eq!(c["ports"][0]["name"], "metrics");
    assert_eq!(c["ports"][0]["containerPort"], 8080);
    assert_eq!(c["livenessProbe"]["httpGet"]["path"], "/livez");
    assert_eq!(c["livenessProbe"]["httpGet"]["port"], "metrics");
    assert_eq!(c["readinessProbe"]["httpGet"]["path"], "/readyz");
    assert_eq!(c["readinessProbe"]["httpGet"]["port"], "metrics");
    assert!(c["resources"]["requests"]["memory"].is_string() && c["resources"]["limits"]["memory"].is_string());
    assert_eq!(pod["serviceAccountName"], "rel-contiguity-operator");
    // Downward API.
    let env = c["env"].as_array().expect("env");
    let field = |name: &str| {
        env.iter()
            .find(|e| e["name"] == name)
            .map(|e| e["valueFrom"]["fieldRef"]["fieldPath"].clone())
    };
    assert_eq!(field("POD_NAME"), Some(json!("metadata.name")));
    assert_eq!(field("POD_NAMESPACE"), Some(json!("metadata.namespace")));
    // Defaults: leader election on, no surge (old and new pod never overlap), no token, no PDB.
    let vals = env_values(dep);
    assert_eq!(vals["LEADER_ELECT"], "true");
    assert_eq!(vals["LEADER_ELECTION_NAMESPACE"], "ops");
    assert_eq!(vals["LEADER_ELECTION_LEASE_NAME"], "rel-contiguity-operator");
    assert_eq!(vals["METRICS_ADDR"], "0.0.0.0:8080");
    assert!(!vals.contains_key("CONTIGUITY_TOKEN_FILE") && !vals.contains_key("WATCH_NAMESPACES"));
    assert_eq!(dep["spec"]["strategy"]["rollingUpdate"]["maxSurge"], 0);
    assert!(find_kind(&objs, "Secret").is_empty() && find_kind(&objs, "PodDisruptionBudget").is_empty());
    assert!(find_kind(&objs, "ServiceMonitor").is_empty() && find_kind(&objs, "NetworkPolicy").is_empty());
    let svc = find(&objs, "Service", "rel-contiguity-operator-metrics");
    assert_eq!(svc["spec"]["ports"][0]["targetPort"], "metrics");
    assert_eq!(svc["spec"]["selector"], dep["spec"]["selector"]["matchLabels"]);

    // Every env var the chart sets is a flag of `contiguity-operator run` (RUST_LOG aside).
    let help = must(
        output(
            Command::new(env!("CARGO_BIN_EXE_contiguity-operator")).args(["run", "--help"]),
            None,
        ),
        "contiguity-operator run --help",
    );
    let all = docs(&render("rel", "ops", &ALL_FEATURES));
    let full = find(&all, "Deployment", "rel-contiguity-operator");
    for e in container(full)["env"].as_array().expect("env") {
        let name = e["name"].as_str().expect("name");
        if name != "RUST_LOG" {
            assert!(
                help.contains(&format!("[env: {name}=")),
                "{name} is not a flag of `run`:\n{help}"
            );
        }
    }

    // All features: token Secret mounted as the token file, PDB, forced leader election.
    let vals = env_values(full);
    assert_eq!(vals["RUST_LOG"], "info,contiguity_operator=debug");
    let secret = find(&all, "Secret", "rel-contiguity-operator-token");
    assert_eq!(secret["data"]["token"], "Y29udGlndWl0eV9za19wYWNrYWdpbmdfdGVzdA==");
    let vol = &full["spec"]["template"]["spec"]["volumes"][0];
    assert_eq!(vol["secret"]["secretName"], "rel-contiguity-operator-token");
    assert_eq!(vol["secret"]["items"], json!([{"key": "token", "path": "token"}]));
    let mount = &container(full)["volumeMounts"][0];
    assert_eq!(mount["name"], vol["name"]);
    assert_eq!(mount["readOnly"], true);
    assert_eq!(
        vals["CONTIGUITY_TOKEN_FILE"],
        format!("{}/token", mount["mountPath"].as_str().expect("mountPath"))
    );
    assert!(
        full["spec"]["template"]["metadata"]["annotations"]["checksum/secret"].is_string(),
        "pods roll when the token changes"
    );
    let pdb = find(&all, "PodDisruptionBudget", "rel-contiguity-operator");
    assert_eq!(pdb["spec"]["minAvailable"], 1);
    assert_eq!(pdb["spec"]["selector"], full["spec"]["selector"]);
    assert_eq!(full["spec"]["replicas"], 2);
    let np = find(&all, "NetworkPolicy", "rel-contiguity-operator");
    assert_eq!(np["spec"]["policyTypes"], json!(["Ingress", "Egress"]));
    let sm = find(&all, "ServiceMonitor", "rel-contiguity-operator");
    assert_eq!(sm["spec"]["endpoints"][0]["port"], "metrics");

    // More than one replica forces leader election on.
    let objs = docs(&render(
        "rel",
        "ops",
        &["replicaCount=3", "leaderElection.enabled=false"],
    ));
    let dep = find(&objs, "Deployment", "rel-contiguity-operator");
    assert_eq!(env_values(dep)["LEADER_ELECT"], "true");
    find(&objs, "Role", "rel-contiguity-operator-leader-election");
    // One replica without leader election: Recreate, and no Lease permissions.
    let objs = docs(&render("rel", "ops", &["leaderElection.enabled=false"]));
    let dep = find(&objs, "Deployment", "rel-contiguity-operator");
    assert_eq!(env_values(dep)["LEADER_ELECT"], "false");
    assert_eq!(dep["spec"]["strategy"]["type"], "Recreate");
    assert!(find_kind(&objs, "Role").is_empty());
    // existingSecret: mounted, not made.
    let objs = docs(&render(
        "rel",
        "ops",
        &[
            "contiguity.existingSecret=my-token",
            "contiguity.existingSecretKey=apikey",
        ],
    ));
    assert!(find_kind(&objs, "Secret").is_empty());
    let dep = find(&objs, "Deployment", "rel-contiguity-operator");
    let vol = &dep["spec"]["template"]["spec"]["volumes"][0]["secret"];
    assert_eq!(vol["secretName"], "my-token");
    assert_eq!(vol["items"], json!([{"key": "apikey", "path": "token"}]));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rendered_chart_passes_a_server_side_dry_run() {
    let cp = control_plane();
    install_service_monitor_crd();
    let ns = cp.namespace("pkg-dry").await;
    label_namespace(&ns, &RESTRICTED);
    let team_a = cp.namespace("pkg-dry-a").await;
    let team_b = cp.namespace("pkg-dry-b").await;
    let watch = format!("watchNamespaces={{{team_a},{team_b}}}");
    let modes: [(&str, Vec<&str>); 3] = [
        ("default values", vec![]),
        ("namespaced mode", vec![watch.as_str()]),
        ("every optional object", ALL_FEATURES.to_vec()),
    ];
    for (what, sets) in modes {
        // `kubectl apply` (client-side, as most people pipe a render) and server-side apply with
        // the CRDs included (client-side apply would warn about the CRDs that the test harness
        // installed server-side).
        for server_side in [false, true] {
            let chart = chart();
            let mut args = vec![
                "template",
                "dry",
                chart.to_str().expect("utf-8"),
                "--namespace",
                ns.as_str(),
            ];
            if server_side {
                args.push("--include-crds");
            }
            let sets = set_args(&sets);
            args.extend(sets.iter().map(String::as_str));
            let manifest = must(helm(&args, false), "helm template");
            let mut apply = vec!["apply", "--dry-run=server", "-f", "-"];
            if server_side {
                apply.insert(1, "--server-side");
            }
            let out = kubectl_in(&apply, &manifest);
            let stdout = must(out.clone(), &format!("{apply:?} ({what})"));
            let stderr = text(&out.stderr);
            // A PodSecurity violation of the restricted profile would be a warning here.
            assert!(!stderr.contains("Warning"), "{what}: {stderr}");
            let objs = docs(&manifest);
            assert_eq!(
                stdout.lines().filter(|l| l.contains("(server dry run)")).count(),
                objs.len(),
                "{what}: every object passed the dry run:\n{stdout}"
            );
        }
    }
}

// ---------------------------------------------------------------------------------------------
// helm install on the real control plane
// ---------------------------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn helm_install_creates_every_object_and_uninstall_removes_them() {
    let cp = control_plane();
    install_service_monitor_crd();
    let ns = cp.namespace("pkg-install").await;
    label_namespace(&ns, &RESTRICTED);
    let chart = chart();
    let mut args = vec![
        "install",
        "inst",
        chart.to_str().expect("utf-8"),
        "--namespace",
        ns.as_str(),
    ];
    let sets = set_args(&ALL_FEATURES);
    args.extend(sets.iter().map(String::as_str));
    let started = Instant::now();
    let notes = must(helm(&args, true), "helm install");
    println!("helm install took {:?}", started.elapsed());
    assert!(notes.contains("STATUS: deployed"), "{notes}");
    assert!(notes.contains("It watches every namespace"), "{notes}");
    assert!(notes.contains("Leader election: on"), "{notes}");
    assert!(!notes.contains("WARNING: no default Contiguity token"), "{notes}");

    // Every object of the release exists on the API server.
    let manifest = must(helm(&["get", "manifest", "inst", "-n", &ns], true), "helm get manifest");
    let objs = docs(&manifest);
    let kinds: BTreeSet<&str> = objs.iter().filter_map(|o| o["kind"].as_str()).collect();
    let expected = [
        "ClusterRole",
        "ClusterRoleBinding",
        "Deployment",
        "NetworkPolicy",
        "PodDisruptionBudget",
        "Role",
        "RoleBinding",
        "Secret",
        "Service",
        "ServiceAccount",
        "ServiceMonitor",
    ];
    assert_eq!(kinds, BTreeSet::from(expected), "kinds of the release");
    for o in &objs {
        let kind = o["kind"].as_str().expect("kind");
        let name = o["metadata"]["name"].as_str().expect("name");
        let api = o["apiVersion"].as_str().expect("apiVersion");
        let group = api.rsplit_once('/').map(|(g, _)| g).unwrap_or("");
        let resource = if group.is_empty() {
            kind.to_lowercase()
        } else {
            format!("{}.{group}", kind.to_lowercase())
        };
        let mut args = vec!["get", resource.as_str(), name, "-o", "name"];
        if let Some(n) = o["metadata"]["namespace"].as_str() {
            args.extend(["-n", n]);
        }
        must(kubectl(&args), &format!("{kind} {name} exists"));
    }
    // The pods never run (no kubelet), but a pod made from the template passes the restricted
    // Pod Security profile, which this namespace enforces...
    let dep = get_json("deployment", &ns, "inst-contiguity-operator");
    let pod = json!({
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": "pod-from-template", "namespace": ns},
        "spec": dep["spec"]["template"]["spec"],
    });
    must(
        kubectl_in(&["create", "--dry-run=server", "-f", "-"], &pod.to_string()),
        "a pod from the Deployment's template is admitted under the restricted profile",
    );
    // ...and would be refused without its security context (the check can fail).
    let mut loose = pod.clone();
    loose["spec"]["containers"][0]["securityContext"] = json!({});
    let out = kubectl_in(&["create", "--dry-run=server", "-f", "-"], &loose.to_string());
    assert!(!out.status.success(), "a pod without securityContext was admitted");
    assert!(text(&out.stderr).contains("PodSecurity"), "{}", text(&out.stderr));

    must(helm(&["uninstall", "inst", "-n", &ns], true), "helm uninstall");
    let gone = kubectl(&["get", "clusterrole", "inst-contiguity-operator", "-o", "name"]);
    assert!(!gone.status.success(), "the ClusterRole outlived the release");
    let left = must(
        kubectl(&[
            "get",
            "deploy,sa,secret,svc,role,rolebinding,pdb,networkpolicy",
            "-n",
            &ns,
            "-o",
            "name",
        ]),
        "list",
    );
    assert!(
        !left.lines().any(|l| l.contains("inst-contiguity-operator")),
        "objects outlived the release: {left}"
    );
}

// ---------------------------------------------------------------------------------------------
// deploy/: the kustomize base
// ---------------------------------------------------------------------------------------------

/// deploy/contiguity-operator.yaml without its header comment (the lines before the first `---`).
fn deploy_manifest_body() -> String {
    let path = repo_root().join("deploy/contiguity-operator.yaml");
    let file = std::fs::read_to_string(&path).expect("read deploy/contiguity-operator.yaml");
    let start = file
        .find("---\n")
        .expect("a YAML document in deploy/contiguity-operator.yaml");
    file[start..].to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deploy_base_equals_a_fresh_render_and_applies() {
    let chart = chart();
    let fresh = must(
        helm(
            &[
                "template",
                DEPLOY_RELEASE,
                chart.to_str().expect("utf-8"),
                "--namespace",
                DEPLOY_NAMESPACE,
                "--include-crds",
            ],
            false,
        ),
        "helm template",
    );
    let committed = deploy_manifest_body();
    if committed != fresh {
        let diff_at = committed
            .lines()
            .zip(fresh.lines())
            .position(|(a, b)| a != b)
            .unwrap_or(committed.lines().count().min(fresh.lines().count()));
        panic!(
            "deploy/contiguity-operator.yaml differs from a fresh render of the chart (first at line {} of \
             the body: {:?} vs {:?}); run `bash deploy/generate.sh` and commit the result",
            diff_at + 1,
            committed.lines().nth(diff_at),
            fresh.lines().nth(diff_at)
        );
    }

    // kustomize builds the base: the namespace plus exactly the rendered objects.
    let deploy = repo_root().join("deploy");
    let built = docs(&must(
        kubectl(&["kustomize", deploy.to_str().expect("utf-8")]),
        "kubectl kustomize deploy/",
    ));
    let mut expected = ids(&docs(&fresh));
    expected.insert(format!("Namespace//{DEPLOY_NAMESPACE}"));
    assert_eq!(ids(&built), expected);
    let ns = find(&built, "Namespace", DEPLOY_NAMESPACE);
    assert_eq!(
        ns["metadata"]["labels"]["pod-security.kubernetes.io/enforce"],
        "restricted"
    );

    // The token component gives the same Deployment as the chart with existingSecret.
    let overlay = scratch("overlay");
    let rel = pathdiff(&deploy, &overlay);
    std::fs::write(
        overlay.join("kustomization.yaml"),
        format!("resources: [{rel}]\ncomponents: [{rel}/components/token]\n"),
    )
    .expect("write overlay");
    let with_token = docs(&must(
        kubectl(&["kustomize", overlay.to_str().expect("utf-8")]),
        "kubectl kustomize with the token component",
    ));
    let chart_with_secret = docs(&render(
        DEPLOY_RELEASE,
        DEPLOY_NAMESPACE,
        &["contiguity.existingSecret=contiguity-operator-token"],
    ));
    assert_eq!(
        find(&with_token, "Deployment", DEPLOY_RELEASE)["spec"],
        find(&chart_with_secret, "Deployment", DEPLOY_RELEASE)["spec"],
        "components/token must equal the chart's contiguity.existingSecret=contiguity-operator-token"
    );

    // And it applies to a real API server as it is.
    control_plane();
    let out = must(
        kubectl(&["apply", "--server-side", "-k", deploy.to_str().expect("utf-8")]),
        "kubectl apply -k deploy/",
    );
    assert!(out.contains("deployment.apps/contiguity-operator"), "{out}");
    must(
        kubectl(&["get", "deployment", DEPLOY_RELEASE, "-n", DEPLOY_NAMESPACE]),
        "the Deployment exists",
    );
}

/// `target` relative to `base` (both absolute), with `/` separators.
fn pathdiff(target: &Path, base: &Path) -> String {
    let t: Vec<_> = target.components().collect();
    let b: Vec<_> = base.components().collect();
    let common = t.iter().zip(&b).take_while(|(x, y)| x == y).count();
    let mut parts: Vec<String> = vec!["..".to_string(); b.len() - common];
    parts.extend(t[common..].iter().map(|c| c.as_os_str().to_string_lossy().into_owned()));
    parts.join("/")
}

// ---------------------------------------------------------------------------------------------
// GitOps health: Argo CD Lua and kstatus
// ---------------------------------------------------------------------------------------------

/// A JSON value as a Lua expression (null becomes nil, as Argo CD's conversion drops it).
fn lua_literal(v: &Value) -> String {
    fn quote(s: &str) -> String {
        let mut out = String::from("\"");
        for b in s.bytes() {
            match b {
                b'"' => out.push_str("\\\""),
                b'\\' => out.push_str("\\\\"),
                0x20..=0x7e => out.push(b as char),
                _ => out.push_str(&format!("\\{b:03}")),
            }
        }
        out.push('"');
        out
    }
    match v {
        Value::Null => "nil".to_string(),
        Value::Bool(b) => b.to_string(),
        Value::Number(n) => n.to_string(),
        Value::String(s) => quote(s),
        Value::Array(xs) => format!("{{{}}}", xs.iter().map(lua_literal).collect::<Vec<_>>().join(", ")),
        Value::Object(m) => format!(
            "{{{}}}",
            m.iter()
                .filter(|(_, v)| !v.is_null())
                .map(|(k, v)| format!("[{}] = {}", quote(k), lua_literal(v)))
                .collect::<Vec<_>>()
                .join(", ")
        ),
    }
}

fn lua_interpreter() -> String {
    std::env::var("LUA").unwrap_or_else(|_| "lua5.1".to_string())
}

/// Runs the Argo CD health script of `obj`'s kind on it: (status, message).
fn argocd_health(obj: &Value) -> (String, String) {
    let script = match obj["kind"].as_str() {
        Some("NumberLease") => "numberlease.lua",
        Some("LeaseFailover") => "leasefailover.lua",
        other => panic!("no health check for kind {other:?}"),
    };
    let script = repo_root().join("health/argocd").join(script);
    // As Argo CD does: the object in the global `obj`, the script's return value is the health.
    let driver = format!(
        "obj = {}\nlocal hs = dofile({})\nio.write(tostring(hs.status), \"\\t\", tostring(hs.message), \"\\n\")\n",
        lua_literal(obj),
        lua_literal(&json!(script.to_str().expect("utf-8")))
    );
    let lua = lua_interpreter();
    let out = output(Command::new(&lua).arg("-"), Some(&driver));
    let out = match out.status.success() {
        true => text(&out.stdout),
        false => panic!(
            "{lua} failed on {}: {}\n(install the Debian package lua5.1, or set LUA)",
            script.display(),
            text(&out.stderr)
        ),
    };
    let (status, message) = out.trim_end_matches('\n').split_once('\t').expect("status\\tmessage");
    (status.to_string(), message.to_string())
}

/// Builds tests/packaging (the kstatus program) once, cached by its sources under target/.
fn kstatus_binary() -> PathBuf {
    static BIN: OnceLock<PathBuf> = OnceLock::new();
    BIN.get_or_init(|| {
        use sha2::{Digest, Sha256};
        let src = repo_root().join("tests/packaging");
        let mut h = Sha256::new();
        for f in ["go.mod", "go.sum", "main.go"] {
            h.update(std::fs::read(src.join(f)).expect("read tests/packaging"));
        }
        let key = hex::encode(&h.finalize()[..8]);
        let bin = repo_root().join(format!("target/packaging/kstatus-{key}"));
        if !bin.exists() {
            let tmp = bin.with_extension(format!("tmp{}", std::process::id()));
            let started = Instant::now();
            must(
                output(
                    Command::new("go")
                        .current_dir(&src)
                        .env("CGO_ENABLED", "0")
                        .args(["build", "-trimpath", "-buildvcs=false", "-o"])
                        .arg(&tmp)
                        .arg("."),
                    None,
                ),
                "go build tests/packaging",
            );
            std::fs::rename(&tmp, &bin).expect("install the kstatus binary");
            println!("built the kstatus program in {:?}", started.elapsed());
        }
        bin
    })
    .clone()
}

/// kstatus verdicts (status, message) of the objects, computed by sigs.k8s.io/cli-utils.
fn kstatus(objs: &[(&str, &Value)]) -> BTreeMap<String, (String, String)> {
    let dir = scratch("kstatus");
    let mut files = Vec::new();
    for (label, obj) in objs {
        let f = dir.join(format!("{label}.json"));
        std::fs::write(&f, serde_json::to_vec_pretty(obj).expect("JSON")).expect("write object");
        files.push(f);
    }
    let out = must(
        output(Command::new(kstatus_binary()).args(&files), None),
        "the kstatus program",
    );
    let lines: Vec<Value> = out
        .lines()
        .map(|l| serde_json::from_str(l).expect("a JSON line"))
        .collect();
    assert_eq!(lines.len(), objs.len(), "{out}");
    objs.iter()
        .zip(lines)
        .map(|((label, obj), v)| {
            assert_eq!(v["name"], obj["metadata"]["name"], "{out}");
            (
                label.to_string(),
                (
                    v["status"].as_str().unwrap_or("").to_string(),
                    v["message"].as_str().unwrap_or("").to_string(),
                ),
            )
        })
        .collect()
}

fn conditions(ready: (&str, &str), reconciling: &str, stalled: (&str, &str), generation: i64) -> Value {
    let c = |kind: &str, status: &str, reason: &str, message: &str| {
        json!({"type": kind, "status": status, "reason": reason, "message": message,
               "observedGeneration": generation, "lastTransitionTime": "2026-01-01T00:00:00Z"})
    };
    json!([
        c("Ready", ready.0, ready.1, &format!("ready says {}", ready.1)),
        c(
            "Reconciling",
            reconciling,
            if reconciling == "True" { "Leasing" } else { "Idle" },
            "reconciling says hi"
        ),
        c("Stalled", stalled.0, stalled.1, &format!("stalled says {}", stalled.1)),
    ])
}

#[test]
fn argocd_health_checks_cover_the_edge_cases() {
    for kind in ["NumberLease", "LeaseFailover"] {
        let obj = |generation: i64, status: Value| {
            json!({"apiVersion": "contiguity.com/v1alpha1", "kind": kind,
                   "metadata": {"name": "x", "namespace": "ns", "generation": generation}, "status": status})
        };
        let ready = conditions(("True", "Leased"), "False", ("False", "Progressing"), 3);
        let cases: Vec<(&str, Value, &str, &str)> = vec![
            (
                "no status",
                obj(1, Value::Null),
                "Progressing",
                "Waiting for the operator",
            ),
            (
                "empty status",
                obj(1, json!({})),
                "Progressing",
                "Waiting for the operator",
            ),
            (
                "ready",
                obj(3, json!({"observedGeneration": 3, "conditions": ready})),
                "Healthy",
                "Leased: ready says Leased",
            ),
            (
                "ready for an older generation",
                obj(4, json!({"observedGeneration": 3, "conditions": ready})),
                "Progressing",
                "generation 4",
            ),
            (
                "stalled",
                obj(
                    3,
                    json!({"observedGeneration": 3,
                           "conditions": conditions(("False", "NumberClaimed"), "False", ("True", "NumberClaimed"), 3)}),
                ),
                "Degraded",
                "NumberClaimed: stalled says NumberClaimed",
            ),
            (
                "reconciling",
                obj(
                    3,
                    json!({"observedGeneration": 3,
                           "conditions": conditions(("False", "Leasing"), "True", ("False", "Progressing"), 3)}),
                ),
                "Progressing",
                "Leasing: reconciling says hi",
            ),
            (
                "waiting",
                obj(
                    3,
                    json!({"observedGeneration": 3,
                           "conditions": conditions(("False", "NotLeased"), "False", ("False", "Progressing"), 3)}),
                ),
                "Progressing",
                "NotLeased: ready says NotLeased",
            ),
            (
                // status.observedGeneration is current but the conditions are not (a partial write).
                "conditions from an older generation",
                obj(
                    3,
                    json!({"observedGeneration": 3,
                           "conditions": conditions(("False", "X"), "False", ("True", "InvalidSpec"), 2)}),
                ),
                "Progressing",
                "X: ready says X",
            ),
        ];
        for (what, o, status, message) in cases {
            let (s, m) = argocd_health(&o);
            assert_eq!(s, status, "{kind} {what}: {m}");
            assert!(m.contains(message), "{kind} {what}: message {m:?} lacks {message:?}");
        }
    }
}

#[test]
fn argocd_cm_snippet_embeds_the_health_checks_unchanged() {
    let dir = repo_root().join("health/argocd");
    let cm: Value = serde_yaml::from_str(&std::fs::read_to_string(dir.join("argocd-cm.yaml")).expect("argocd-cm.yaml"))
        .expect("argocd-cm.yaml is YAML");
    assert_eq!(cm["kind"], "ConfigMap");
    assert_eq!(cm["metadata"]["name"], "argocd-cm");
    let data = cm["data"].as_object().expect("data");
    assert_eq!(data.len(), 2, "{:?}", data.keys());
    for (kind, file) in [
        ("NumberLease", "numberlease.lua"),
        ("LeaseFailover", "leasefailover.lua"),
    ] {
        let key = format!("resource.customizations.health.contiguity.com_{kind}");
        let script = std::fs::read_to_string(dir.join(file)).expect("script");
        assert_eq!(
            data.get(&key).and_then(Value::as_str),
            Some(script.as_str()),
            "{key} differs from health/argocd/{file}"
        );
    }
}

// ---------------------------------------------------------------------------------------------
// The operator with the chart's identity
// ---------------------------------------------------------------------------------------------

/// The operator binary run as the chart's Deployment would run it: the env of the installed
/// Deployment, the ServiceAccount's token, nothing inherited. Killed when dropped.
struct ChartOperator {
    child: Child,
    log: PathBuf,
    port: u16,
    env: BTreeMap<String, String>,
}

impl ChartOperator {
    fn start(name: &str, env: &BTreeMap<String, String>) -> ChartOperator {
        let port = free_port();
        let mut env = env.clone();
        env.insert("METRICS_ADDR".into(), format!("127.0.0.1:{port}"));
        env.insert("POD_NAME".into(), name.to_string());
        let log = log_dir().join(format!("packaging-{name}-{:08x}.log", rand::random::<u32>()));
        let child = Self::spawn(&env, &log);
        ChartOperator { child, log, port, env }
    }

    fn spawn(env: &BTreeMap<String, String>, log: &Path) -> Child {
        let file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(log)
            .expect("open operator log");
        let err = file.try_clone().expect("clone log handle");
        Command::new(env!("CARGO_BIN_EXE_contiguity-operator"))
            .arg("run")
            .env_clear()
            .envs(env)
            .stdin(Stdio::null())
            .stdout(file)
            .stderr(err)
            .spawn()
            .expect("start the operator")
    }

    fn restart(&mut self) {
        self.kill();
        self.child = Self::spawn(&self.env, &self.log);
    }

    fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    fn terminate(&mut self, timeout: Duration) -> Option<ExitStatus> {
        sigterm_and_wait(&mut self.child, timeout)
    }

    fn logs(&self) -> String {
        read_to_string(&self.log)
    }

    async fn http_status(&self, path: &str) -> Option<u16> {
        contiguity_operator::contiguity::install_crypto_provider();
        let url = format!("http://127.0.0.1:{}{path}", self.port);
        reqwest::get(&url).await.ok().map(|r| r.status().as_u16())
    }

    async fn wait_for_200(&self, path: &str, timeout: Duration) {
        let deadline = Instant::now() + timeout;
        while Instant::now() < deadline {
            if self.http_status(path).await == Some(200) {
                return;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        panic!("{path} never answered 200; log:\n{}", self.logs());
    }

    async fn wait_ready(&self, timeout: Duration) {
        self.wait_for_200("/readyz", timeout).await;
    }

    /// No permission error anywhere in the log: the chart's RBAC was enough.
    fn assert_never_forbidden(&self) {
        let logs = self.logs();
        let lower = logs.to_lowercase();
        assert!(
            !lower.contains("forbidden"),
            "the operator hit a permission error with the chart's RBAC:\n{logs}"
        );
    }
}

impl Drop for ChartOperator {
    fn drop(&mut self) {
        self.kill();
    }
}

/// A chart release installed on the control plane, and the identity of its ServiceAccount.
struct Release {
    ns: String,
    fullname: String,
    deployment: Value,
    kubeconfig: PathBuf,
}

async fn install_release(name: &str, ns: &str, sets: &[&str]) -> Release {
    let chart = chart();
    let mut args = vec!["install", name, chart.to_str().expect("utf-8"), "--namespace", ns];
    let sets = set_args(sets);
    args.extend(sets.iter().map(String::as_str));
    must(helm(&args, true), &format!("helm install {name}"));
    let fullname = format!("{name}-contiguity-operator");
    let deployment = get_json("deployment", ns, &fullname);
    let sa = deployment["spec"]["template"]["spec"]["serviceAccountName"]
        .as_str()
        .expect("serviceAccountName")
        .to_string();
    // A token of the chart's ServiceAccount from the TokenRequest API, as the kubelet would mount.
    let token = must(
        kubectl(&["create", "token", &sa, "-n", ns, "--duration=2h"]),
        "kubectl create token",
    );
    let info = &control_plane().info;
    let kubeconfig = scratch(&format!("sa-{name}")).join("kubeconfig");
    let config = json!({
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{"name": "test", "cluster": {"server": info.server, "certificate-authority": info.ca_file}}],
        "users": [{"name": sa, "user": {"token": token.trim()}}],
        "contexts": [{"name": "chart", "context": {"cluster": "test", "user": sa}}],
        "current-context": "chart",
    });
    std::fs::write(&kubeconfig, serde_json::to_vec_pretty(&config).expect("JSON")).expect("write kubeconfig");
    let who = must(
        kubectl_as(
            &kubeconfig,
            &["auth", "whoami", "-o", "jsonpath={.status.userInfo.username}"],
        ),
        "auth whoami",
    );
    assert_eq!(who, format!("system:serviceaccount:{ns}:{sa}"));
    Release {
        ns: ns.to_string(),
        fullname,
        deployment,
        kubeconfig,
    }
}

impl Release {
    /// The env the chart gives the operator container, made runnable outside a pod: downward-API
    /// values filled in, the token Secret's value written where CONTIGUITY_TOKEN_FILE points.
    fn operator_env(&self) -> BTreeMap<String, String> {
        let c = container(&self.deployment);
        let mut env = BTreeMap::new();
        for e in c["env"].as_array().expect("env") {
            let name = e["name"].as_str().expect("name").to_string();
            let value = if let Some(v) = e["value"].as_str() {
                v.to_string()
            } else {
                match e["valueFrom"]["fieldRef"]["fieldPath"].as_str() {
                    Some("metadata.name") => format!("{}-pod", self.fullname),
                    Some("metadata.namespace") => self.ns.clone(),
                    other => panic!("unexpected env source {other:?} for {name}"),
                }
            };
            env.insert(name, value);
        }
        if let Some(path) = env.get("CONTIGUITY_TOKEN_FILE").cloned() {
            // The Secret volume the chart mounts, read back from the API server.
            let vol = &self.deployment["spec"]["template"]["spec"]["volumes"][0]["secret"];
            let mount = c["volumeMounts"][0]["mountPath"].as_str().expect("mountPath");
            let item = &vol["items"][0];
            assert_eq!(path, format!("{mount}/{}", item["path"].as_str().expect("path")));
            let secret = vol["secretName"].as_str().expect("secretName");
            let key = item["key"].as_str().expect("key");
            let token = must(
                kubectl(&[
                    "get",
                    "secret",
                    secret,
                    "-n",
                    &self.ns,
                    "-o",
                    &format!("go-template={{{{index .data \"{key}\" | base64decode}}}}"),
                ]),
                "read the chart's token Secret",
            );
            let file = scratch("token").join("token");
            std::fs::write(&file, token).expect("write token file");
            env.insert("CONTIGUITY_TOKEN_FILE".into(), file.display().to_string());
        }
        env.insert("KUBECONFIG".into(), self.kubeconfig.display().to_string());
        env.entry("RUST_LOG".into())
            .or_insert_with(|| "info,contiguity_operator=debug".into());
        env
    }

    /// `kubectl auth can-i` as the chart's ServiceAccount.
    fn can(&self, args: &[&str]) -> bool {
        let mut all = vec!["auth", "can-i"];
        all.extend_from_slice(args);
        let out = kubectl_as(&self.kubeconfig, &all);
        let answer = text(&out.stdout);
        match answer.trim() {
            "yes" => true,
            "no" => false,
            _ => panic!("auth can-i {args:?}: {answer} {}", text(&out.stderr)),
        }
    }

    fn assert_permissions(&self, allowed: &[&[&str]], denied: &[&[&str]]) {
        for a in allowed {
            assert!(self.can(a), "the chart's ServiceAccount cannot {a:?}");
        }
        for d in denied {
            assert!(
                !self.can(d),
                "the chart's ServiceAccount can {d:?}, which it was not meant to"
            );
        }
    }
}

async fn start_sandbox() -> SandboxHandle {
    let cfg = SandboxConfig::with_tokens([TOKEN, OTHER_TOKEN]);
    Sandbox::start(cfg, "127.0.0.1:0".parse().expect("addr"))
        .await
        .expect("start the sandbox")
}

fn apply_in(ns: &str, manifest: &str) {
    must(kubectl_in(&["apply", "-n", ns, "-f", "-"], manifest), "kubectl apply");
}

fn nl_api(ns: &str, client: &kube::Client) -> kube::Api<NumberLease> {
    kube::Api::namespaced(client.clone(), ns)
}

fn lf_api(ns: &str, client: &kube::Client) -> kube::Api<LeaseFailover> {
    kube::Api::namespaced(client.clone(), ns)
}

fn nl_reason(nl: &NumberLease, kind: &str) -> Option<(String, String)> {
    nl.status.as_ref().and_then(|s| condition(&s.conditions, kind))
}

fn lf_reason(lf: &LeaseFailover, kind: &str) -> Option<(String, String)> {
    lf.status.as_ref().and_then(|s| condition(&s.conditions, kind))
}

fn lf_current_ready(lf: &LeaseFailover) -> bool {
    lf.status.as_ref().is_some_and(|s| {
        s.observed_generation == lf.metadata.generation
            && condition(&s.conditions, "Ready").is_some_and(|(st, _)| st == "True")
    })
}

async fn wait_gone_all(ns: &str, client: &kube::Client) {
    let (nls, lfs) = (nl_api(ns, client), lf_api(ns, client));
    wait_for("every NumberLease and LeaseFailover deleted", T, || {
        let (nls, lfs) = (nls.clone(), lfs.clone());
        async move {
            let lp = kube::api::ListParams::default();
            let n = nls.list(&lp).await.ok()?.items.len();
            let l = lfs.list(&lp).await.ok()?.items.len();
            (n == 0 && l == 0).then_some(())
        }
    })
    .await;
}

/// POSTs a lease at the sandbox the way the Observe example's comment tells a user to.
async fn lease_outside_the_cluster(sandbox: &SandboxHandle, number: &str) {
    contiguity_operator::contiguity::install_crypto_provider();
    let url = format!("{}/numbers/lease/{}", sandbox.base_url(), number.replace('+', "%2B"));
    let resp = reqwest::Client::new()
        .post(&url)
        .header("Authorization", format!("Token {TOKEN}"))
        .json(&json!({"billing_method": "monthly"}))
        .send()
        .await
        .expect("lease call");
    let status = resp.status();
    assert!(
        status.is_success(),
        "leasing {number} outside: {status} {:?}",
        resp.text().await
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn operator_with_the_chart_identity_in_namespaced_mode_runs_the_examples_and_reports_health() {
    // Build (or find) the kstatus program while the operator works.
    std::thread::spawn(kstatus_binary);
    let cp = control_plane();
    let client = cp.client().await;
    let rel_ns = cp.namespace("pkg-ns-rel").await;
    let watched = cp.namespace("pkg-ns-watched").await;
    let outside = cp.namespace("pkg-ns-outside").await;
    let sandbox = start_sandbox().await;
    let watch = format!("watchNamespaces={{{watched}}}");
    let base_url = format!("contiguity.baseUrl={}", sandbox.base_url());
    let token = format!("contiguity.token={TOKEN}");
    let release = install_release(
        "nsmode",
        &rel_ns,
        &[
            &watch,
            &base_url,
            &token,
            "backoff.base=200ms",
            "backoff.max=3s",
            "contiguity.requestTimeout=3s",
            "contiguity.rateLimit=200",
            "contiguity.rateBurst=200",
            "logFormat=plain",
        ],
    )
    .await;

    // Secrets: one the operator may read (a second account's token), one it may not.
    must(
        kubectl(&[
            "create",
            "secret",
            "generic",
            "team-b",
            "-n",
            &watched,
            &format!("--from-literal=token={OTHER_TOKEN}"),
        ]),
        "create team-b secret",
    );
    must(
        kubectl(&[
            "create",
            "secret",
            "generic",
            "elsewhere",
            "-n",
            &outside,
            "--from-literal=token=secret",
        ]),
        "create outside secret",
    );
    // Denied: a Secret outside watchNamespaces, read with the chart's identity.
    let denied = kubectl_as(&release.kubeconfig, &["get", "secret", "elsewhere", "-n", &outside]);
    assert!(
        !denied.status.success(),
        "the chart's identity read a Secret outside its namespaces"
    );
    assert!(
        text(&denied.stderr).contains("Forbidden") || text(&denied.stderr).contains("forbidden"),
        "{}",
        text(&denied.stderr)
    );
    must(
        kubectl_as(&release.kubeconfig, &["get", "secret", "team-b", "-n", &watched]),
        "read a Secret in a watched namespace",
    );
    let lease_name = release.operator_env()["LEADER_ELECTION_LEASE_NAME"].clone();
    let lease_ref = format!("leases.coordination.k8s.io/{lease_name}");
    release.assert_permissions(
        &[
            &["list", "numberleases.contiguity.com", "-n", &watched],
            &["watch", "leasefailovers.contiguity.com", "-n", &watched],
            &[
                "patch",
                "numberleases.contiguity.com",
                "--subresource=status",
                "-n",
                &watched,
            ],
            &["list", "secrets", "-n", &watched],
            &["create", "events.events.k8s.io", "-n", &watched],
            &["update", &lease_ref, "-n", &rel_ns],
            &["create", "leases.coordination.k8s.io", "-n", &rel_ns],
        ],
        &[
            &["get", "secrets", "-n", &outside],
            &["list", "secrets", "--all-namespaces"],
            &["list", "numberleases.contiguity.com", "-n", &outside],
            &["list", "numberleases.contiguity.com", "--all-namespaces"],
            &["update", "numberleases.contiguity.com", "-n", &watched],
            &["delete", "numberleases.contiguity.com", "-n", &watched],
            &["create", "secrets", "-n", &watched],
            &["get", "configmaps", "-n", &watched],
            &["update", "leases.coordination.k8s.io/someone-else", "-n", &rel_ns],
            &["get", "leases.coordination.k8s.io", "-n", &watched],
            &["create", "pods", "-n", &rel_ns],
        ],
    );

    let env = release.operator_env();
    assert_eq!(env["WATCH_NAMESPACES"], watched);
    assert_eq!(env["LEADER_ELECT"], "true");
    let mut op = ChartOperator::start("nsmode", &env);
    op.wait_ready(T).await;

    // The examples, applied as they are.
    let examples = repo_root().join("deploy/examples");
    must(
        kubectl(&["apply", "-n", &watched, "-f", examples.to_str().expect("utf-8")]),
        "kubectl apply -f deploy/examples/",
    );
    let nls = nl_api(&watched, &client);
    let lfs = lf_api(&watched, &client);
    let sms = wait_obj(&nls, "sms-sender", "Ready", T, nl_is_ready).await;
    let support = wait_obj(&nls, "support-line", "Ready", T, nl_is_ready).await;
    let sms_lf = wait_obj(&lfs, "sms-sender-failover", "Ready", T, lf_current_ready).await;
    wait_obj(&lfs, "support-line-failover", "Ready", T, lf_current_ready).await;
    let state = sandbox.state();
    let at = state.current_lease("+15550100000").expect("sms-sender leased");
    assert_eq!(
        Some(at.lease_id.clone()),
        sms.status.as_ref().and_then(|s| s.lease_id.clone())
    );
    assert_eq!(at.account, fingerprint_of(TOKEN), "the chart's token Secret was used");
    let fo = at.failover.expect("failover on sms-sender");
    assert!(fo.enabled && fo.numbers.is_empty(), "{fo:?}");
    let at = state.current_lease("+15550100001").expect("support-line leased");
    assert_eq!(at.billing_method.as_str(), "monthly");
    assert_eq!(
        at.failover.map(|f| f.numbers),
        Some(vec!["+15550100000".to_string()]),
        "selective failover"
    );
    assert_eq!(
        support.status.as_ref().and_then(|s| s.number.clone()).as_deref(),
        Some("+15550100001")
    );
    assert!(sms_lf.status.as_ref().and_then(|s| s.applied.as_ref()).is_some());

    // The Observe example, once the number is leased outside the cluster as its comment says.
    lease_outside_the_cluster(&sandbox, "+15550100002").await;
    let observe = examples.join("observe");
    must(
        kubectl(&["apply", "-n", &watched, "-f", observe.to_str().expect("utf-8")]),
        "apply the Observe example",
    );
    let observed = wait_obj(&nls, "observed-number", "Ready", T, nl_is_ready).await;
    assert_eq!(nl_reason(&observed, "Ready").map(|r| r.1).as_deref(), Some("Observed"));

    // A lease billed to the account whose token a Secret in the namespace holds.
    apply_in(
        &watched,
        r#"{"apiVersion": "contiguity.com/v1alpha1", "kind": "NumberLease", "metadata": {"name": "team-b-line"},
            "spec": {"number": "+15550100010", "credentialsSecretRef": {"name": "team-b", "key": "token"}}}"#,
    );
    wait_obj(&nls, "team-b-line", "Ready", T, nl_is_ready).await;
    assert_eq!(
        sandbox.state().current_lease("+15550100010").expect("leased").account,
        fingerprint_of(OTHER_TOKEN)
    );

    // Resources that cannot converge, for the health checks.
    apply_in(
        &watched,
        r#"{"apiVersion": "contiguity.com/v1alpha1", "kind": "NumberLease", "metadata": {"name": "missing-secret"},
            "spec": {"number": "+15550100011", "credentialsSecretRef": {"name": "no-such-secret", "key": "token"}}}"#,
    );
    apply_in(
        &watched,
        r#"{"apiVersion": "contiguity.com/v1alpha1", "kind": "NumberLease", "metadata": {"name": "unknown-number"},
            "spec": {"number": "+15559990000"}}"#,
    );
    apply_in(
        &watched,
        r#"{"apiVersion": "contiguity.com/v1alpha1", "kind": "NumberLease", "metadata": {"name": "not-leased"},
            "spec": {"number": "+15550100012", "managementPolicy": "Observe"}}"#,
    );
    apply_in(
        &watched,
        r#"{"apiVersion": "contiguity.com/v1alpha1", "kind": "LeaseFailover", "metadata": {"name": "dangling"},
            "spec": {"leaseRef": {"name": "no-such-lease"}, "enabled": true}}"#,
    );
    // Not watched: the operator never touches it.
    apply_in(
        &outside,
        r#"{"apiVersion": "contiguity.com/v1alpha1", "kind": "NumberLease", "metadata": {"name": "unwatched"},
            "spec": {"number": "+15550100020"}}"#,
    );
    let stalled_on = |reason: &'static str| {
        move |nl: &NumberLease| nl_reason(nl, "Stalled").is_some_and(|(s, r)| s == "True" && r == reason)
    };
    wait_obj(
        &nls,
        "missing-secret",
        "Stalled",
        T,
        stalled_on("CredentialsSecretNotFound"),
    )
    .await;
    wait_obj(&nls, "unknown-number", "Stalled", T, stalled_on("NumberNotFound")).await;
    wait_obj(&nls, "not-leased", "NotLeased", T, |nl| {
        nl_reason(nl, "Ready").is_some_and(|(s, r)| s == "False" && r == "NotLeased")
    })
    .await;
    wait_obj(&lfs, "dangling", "LeaseNotReady", T, |lf| {
        lf_reason(lf, "Reconciling").is_some_and(|(s, r)| s == "True" && r == "LeaseNotReady")
    })
    .await;

    // Events were recorded with the chart's permissions.
    let events: Value = serde_json::from_str(&must(
        kubectl(&["get", "events.events.k8s.io", "-n", &watched, "-o", "json"]),
        "list events",
    ))
    .expect("events JSON");
    let leased_event = events["items"].as_array().expect("items").iter().any(|e| {
        e["regarding"]["name"] == "sms-sender"
            && e["reason"] == "Leased"
            && e["reportingController"] == "contiguity-operator"
    });
    assert!(leased_event, "no Leased event for sms-sender: {events:#}");
    // The leader Lease, held by this replica, in the release namespace.
    let lease = get_json("leases.coordination.k8s.io", &rel_ns, &lease_name);
    assert_eq!(
        lease["spec"]["holderIdentity"], "nsmode",
        "held by this replica (POD_NAME)"
    );

    // The status objects as Argo CD and Flux read them.
    let mut objects: Vec<(&str, Value)> = vec![
        ("ready-numberlease", get_json("numberlease", &watched, "sms-sender")),
        (
            "ready-observed-numberlease",
            get_json("numberlease", &watched, "observed-number"),
        ),
        (
            "ready-leasefailover",
            get_json("leasefailover", &watched, "support-line-failover"),
        ),
        (
            "stalled-credentials",
            get_json("numberlease", &watched, "missing-secret"),
        ),
        ("stalled-not-found", get_json("numberlease", &watched, "unknown-number")),
        ("waiting-not-leased", get_json("numberlease", &watched, "not-leased")),
        (
            "reconciling-leasefailover",
            get_json("leasefailover", &watched, "dangling"),
        ),
    ];

    // A spec change the operator has not seen yet: stop it (gracefully: it releases the
    // leader Lease), change the spec, read the object.
    let status = blocking(|| op.terminate(Duration::from_secs(20))).expect("the operator exits on SIGTERM");
    assert!(status.success(), "exit status {status}");
    let lease = get_json("leases.coordination.k8s.io", &rel_ns, &lease_name);
    assert!(
        lease["spec"]["holderIdentity"].as_str().unwrap_or("").is_empty(),
        "the Lease was released on shutdown: {lease:#}"
    );
    must(
        kubectl(&[
            "patch",
            "numberlease",
            "sms-sender",
            "-n",
            &watched,
            "--type=merge",
            "-p",
            r#"{"spec":{"adoption":"IfLeased"}}"#,
        ]),
        "patch sms-sender",
    );
    let stale = get_json("numberlease", &watched, "sms-sender");
    assert_ne!(stale["metadata"]["generation"], stale["status"]["observedGeneration"]);
    objects.push(("stale-generation", stale));
    let mut fresh = get_json("numberlease", &watched, "team-b-line");
    fresh.as_object_mut().expect("object").remove("status");
    objects.push(("no-status-yet", fresh));

    let expected: BTreeMap<&str, (&str, &str)> = BTreeMap::from([
        ("ready-numberlease", ("Healthy", "Current")),
        ("ready-observed-numberlease", ("Healthy", "Current")),
        ("ready-leasefailover", ("Healthy", "Current")),
        ("stalled-credentials", ("Degraded", "Failed")),
        ("stalled-not-found", ("Degraded", "Failed")),
        ("waiting-not-leased", ("Progressing", "InProgress")),
        ("reconciling-leasefailover", ("Progressing", "InProgress")),
        ("stale-generation", ("Progressing", "InProgress")),
        // kstatus reads an object without any status as Current (its documented limit for
        // custom resources); the Argo CD check waits for the operator.
        ("no-status-yet", ("Progressing", "Current")),
    ]);
    let dir = scratch("status-objects");
    for (label, obj) in &objects {
        std::fs::write(
            dir.join(format!("{label}.json")),
            serde_json::to_vec_pretty(obj).expect("JSON"),
        )
        .expect("write status object");
    }
    println!("status objects written to {}", dir.display());
    let refs: Vec<(&str, &Value)> = objects.iter().map(|(l, o)| (*l, o)).collect();
    let ks = kstatus(&refs);
    for (label, obj) in &objects {
        let (argo, flux) = expected[label];
        let (status, message) = argocd_health(obj);
        assert_eq!(status, argo, "Argo CD health of {label}: {message}\n{obj:#}");
        let (kstatus, kmessage) = &ks[*label];
        assert_eq!(kstatus, flux, "kstatus of {label}: {kmessage}\n{obj:#}");
        if argo != "Healthy" && *label != "no-status-yet" && *label != "stale-generation" {
            // The operator's own words reach the user.
            let reason = obj["status"]["conditions"]
                .as_array()
                .expect("conditions")
                .iter()
                .find(|c| c["status"] == "True" && c["type"] != "Ready")
                .or_else(|| {
                    obj["status"]["conditions"]
                        .as_array()?
                        .iter()
                        .find(|c| c["type"] == "Ready")
                })
                .and_then(|c| c["message"].as_str())
                .expect("a condition message");
            assert!(
                message.contains(reason),
                "{label}: Argo CD message {message:?} lacks {reason:?}"
            );
        }
    }

    // A new process (same env) catches up with the changed spec.
    op.restart();
    op.wait_ready(T).await;
    wait_obj(&nls, "sms-sender", "Ready at generation 2", T, nl_is_ready).await;

    // Deleting everything: finalizers run with the chart's permissions. The failovers go first,
    // while the leases they reset still exist.
    must(
        kubectl(&["delete", "leasefailovers", "--all", "-n", &watched, "--timeout=60s"]),
        "delete the LeaseFailovers",
    );
    must(
        kubectl(&["delete", "numberleases", "--all", "-n", &watched, "--wait=false"]),
        "delete the NumberLeases",
    );
    wait_gone_all(&watched, &client).await;
    let state = sandbox.state();
    assert!(state.current_lease("+15550100000").is_none(), "sms-sender terminated");
    assert!(state.current_lease("+15550100010").is_none(), "team-b-line terminated");
    let kept = state
        .current_lease("+15550100001")
        .expect("support-line retained (Retain)");
    assert!(!kept.failover.is_some_and(|f| f.enabled), "its failover was reset");
    assert!(
        state.current_lease("+15550100002").is_some(),
        "the observed lease is untouched"
    );

    let unwatched = get_json("numberlease", &outside, "unwatched");
    assert!(
        unwatched.get("status").is_none(),
        "an unwatched namespace was reconciled"
    );
    assert!(unwatched["metadata"].get("finalizers").is_none());
    op.assert_never_forbidden();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn operator_with_the_chart_identity_in_cluster_mode_fails_over_between_replicas() {
    let cp = control_plane();
    let client = cp.client().await;
    let rel_ns = cp.namespace("pkg-cl-rel").await;
    let ns_a = cp.namespace("pkg-cl-a").await;
    let ns_b = cp.namespace("pkg-cl-b").await;
    let sandbox = start_sandbox().await;
    let run = format!("{:08x}", rand::random::<u32>());
    // The label selector keeps this cluster-wide operator off the other tests' resources.
    let selector = format!("labelSelector=packaging.contiguity.com/run={run}");
    let base_url = format!("contiguity.baseUrl={}", sandbox.base_url());
    let token = format!("contiguity.token={TOKEN}");
    let release = install_release(
        "clmode",
        &rel_ns,
        &[
            &selector,
            &base_url,
            &token,
            "replicaCount=2",
            "leaderElection.enabled=false",
            "leaderElection.leaseDuration=4s",
            "backoff.base=200ms",
            "backoff.max=3s",
            "contiguity.requestTimeout=3s",
        ],
    )
    .await;
    release.assert_permissions(
        &[
            &["list", "numberleases.contiguity.com", "--all-namespaces"],
            &["watch", "secrets", "--all-namespaces"],
            &["get", "secrets", "-n", &ns_a],
            &[
                "patch",
                "leasefailovers.contiguity.com",
                "--subresource=status",
                "-n",
                &ns_b,
            ],
            &["create", "events.events.k8s.io", "-n", &ns_b],
        ],
        &[
            &["update", "numberleases.contiguity.com", "-n", &ns_a],
            &["delete", "leasefailovers.contiguity.com", "-n", &ns_a],
            &["create", "secrets", "-n", &ns_a],
            &["delete", "secrets", "-n", &ns_a],
            &["get", "configmaps", "-n", &ns_a],
            &["list", "pods", "--all-namespaces"],
            &["create", "leases.coordination.k8s.io", "-n", &ns_a],
            &["update", "leases.coordination.k8s.io/someone-else", "-n", &rel_ns],
            &["create", "clusterrolebindings.rbac.authorization.k8s.io"],
            &["update", "customresourcedefinitions.apiextensions.k8s.io"],
        ],
    );
    let env = release.operator_env();
    assert!(!env.contains_key("WATCH_NAMESPACES"));
    assert_eq!(env["LEADER_ELECT"], "true", "forced on by replicaCount=2");
    assert_eq!(env["LABEL_SELECTOR"], format!("packaging.contiguity.com/run={run}"));

    let mut first = ChartOperator::start("clmode-a", &env);
    first.wait_ready(T).await;
    let second = ChartOperator::start("clmode-b", &env);
    let labels = format!(r#"{{"packaging.contiguity.com/run": "{run}"}}"#);
    apply_in(
        &ns_a,
        &format!(
            r#"{{"apiVersion": "contiguity.com/v1alpha1", "kind": "NumberLease",
                 "metadata": {{"name": "one", "labels": {labels}}}, "spec": {{"number": "+15550100030"}}}}"#
        ),
    );
    apply_in(
        &ns_a,
        &format!(
            r#"{{"apiVersion": "contiguity.com/v1alpha1", "kind": "LeaseFailover",
                 "metadata": {{"name": "one-failover", "labels": {labels}}},
                 "spec": {{"leaseRef": {{"name": "one"}}, "enabled": true, "mode": "all"}}}}"#
        ),
    );
    apply_in(
        &ns_a,
        r#"{"apiVersion": "contiguity.com/v1alpha1", "kind": "NumberLease",
            "metadata": {"name": "not-selected"}, "spec": {"number": "+15550100031"}}"#,
    );
    wait_obj(&nl_api(&ns_a, &client), "one", "Ready", T, nl_is_ready).await;
    wait_obj(&lf_api(&ns_a, &client), "one-failover", "Ready", T, lf_current_ready).await;
    second.wait_for_200("/livez", T).await;
    // A standby reports ready (so rollouts proceed) but runs no controllers: the leader
    // holds the Lease and only the leader's metrics count reconciles.
    assert_eq!(
        second.http_status("/readyz").await,
        Some(200),
        "a healthy standby must report ready, or multi-replica rollouts stall"
    );

    // The leader dies without releasing its Lease: the standby takes over after it expires.
    let died = Instant::now();
    first.kill();
    let lease_name = env["LEADER_ELECTION_LEASE_NAME"].clone();
    wait_for("the standby to take the Lease", Duration::from_secs(30), || {
        let (rel_ns, lease_name) = (rel_ns.clone(), lease_name.clone());
        async move {
            let lease = blocking(|| get_json("leases.coordination.k8s.io", &rel_ns, &lease_name));
            (lease["spec"]["holderIdentity"] == "clmode-b").then_some(())
        }
    })
    .await;
    println!("standby took over {:?} after the leader died", died.elapsed());
    second.wait_ready(Duration::from_secs(30)).await;
    apply_in(
        &ns_b,
        &format!(
            r#"{{"apiVersion": "contiguity.com/v1alpha1", "kind": "NumberLease",
                 "metadata": {{"name": "two", "labels": {labels}}}, "spec": {{"number": "+15550100032"}}}}"#
        ),
    );
    wait_obj(&nl_api(&ns_b, &client), "two", "Ready", T, nl_is_ready).await;

    for ns in [&ns_a, &ns_b] {
        must(
            kubectl(&[
                "delete",
                "leasefailovers,numberleases",
                "-l",
                &format!("packaging.contiguity.com/run={run}"),
                "-n",
                ns,
                "--wait=false",
            ]),
            "delete",
        );
    }
    wait_for("the labelled resources are gone", T, || {
        let (a, b) = (nl_api(&ns_a, &client), nl_api(&ns_b, &client));
        async move {
            let a = a.get_opt("one").await.ok()?;
            let b = b.get_opt("two").await.ok()?;
            (a.is_none() && b.is_none()).then_some(())
        }
    })
    .await;
    let state = sandbox.state();
    assert!(state.current_lease("+15550100030").is_none() && state.current_lease("+15550100032").is_none());
    assert!(
        state.current_lease("+15550100031").is_none(),
        "the unselected resource was never leased"
    );
    let unselected = get_json("numberlease", &ns_a, "not-selected");
    assert!(unselected.get("status").is_none(), "the label selector was ignored");
    first.assert_never_forbidden();
    second.assert_never_forbidden();
}
