#!/usr/bin/env bash
# Validates the Kubernetes manifests offline. From anywhere:
#
#   deploy/k8s/validate.sh            # what the machine has; missing optional tools are skipped
#   deploy/k8s/validate.sh --install  # first install kubeconform (Go module proxy) and the
#                                     # kubernetes-validate schemas (PyPI) into the cache
#
# Steps:
#   1. kustomize build of base, overlays/example, overlays/example-keda, monitoring and cert-manager
#      (required: any error fails).
#   2. flags: every clickstream container's args are parsed by the real binary (`<args> -h`), and every
#      CLICKSTREAM_<FLAG> variable it sets must name a flag of its command, so a renamed or mistyped
#      flag fails here, not in a CrashLoopBackOff; the same for the services of deploy/compose.yaml,
#      whose volumes and dependencies must also be declared. Needs go and python3 + PyYAML.
#   3. kubeconform -strict against the Kubernetes JSON schemas of K8S_VERSIONS, from local files only
#      (never downloaded by kubeconform). The schemas come from the PyPI package kubernetes-validate,
#      rewritten once into the cache so that kubeconform can resolve their references offline.
#      ServiceMonitor, Certificate, Issuer and ScaledObject (CRDs) have no schema there and are
#      skipped (-skip): step 4 checks the ScaledObject instead.
#   4. KEDA: in every build, each ScaledObject targets a Deployment of that build that no
#      HorizontalPodAutoscaler also targets, with min <= max and well-formed triggers (a prometheus
#      trigger with serverAddress, query and a numeric threshold; string metadata). Needs python3 +
#      PyYAML. deploy/monitoring_test.go (go test) checks the query's metric names.
#
# Environment:
#   K8S_VERSIONS     Kubernetes versions to validate against (default "1.30.0 1.37.0"; 1.25-1.37 available)
#   K8S_SCHEMA_DIR   a directory with v<version>-local-strict/ or v<version>-standalone-strict/ schema
#                    folders (kubeconform layout) to use instead of kubernetes-validate's
#   KUBECONFORM      the kubeconform binary (default: PATH, then $(go env GOPATH)/bin, then the cache)
#   KUSTOMIZE        a command that takes `build DIR` (default: `kubectl kustomize`, then `kustomize`,
#                    then `go run sigs.k8s.io/kustomize/kustomize/v5@v5.8.2`)
#   CLICKSTREAM_BIN  a built clickstream binary for step 2 (default: go build ./cmd/clickstream)
#   CLICKSTREAM_CACHE  cache root (default ~/.cache/clickstream); tools live in $CLICKSTREAM_CACHE/k8s
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
repo=$(cd "$here/../.." && pwd)
cache=${CLICKSTREAM_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/clickstream}/k8s
versions=${K8S_VERSIONS:-1.30.0 1.37.0}
kubeconform_version=v0.8.0
kubernetes_validate_version=1.37.0

install=false
for a in "$@"; do
	case $a in
	--install) install=true ;;
	-h | --help) sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
	*) echo "validate.sh: unknown argument $a" >&2; exit 2 ;;
	esac
done

out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT
say() { printf '== %s\n' "$*"; }
failed=0

# ------------------------------------------------------------------------------------ 1. kustomize
if [[ -n ${KUSTOMIZE:-} ]]; then
	read -r -a kustomize <<<"$KUSTOMIZE"
elif command -v kubectl >/dev/null && kubectl kustomize --help >/dev/null 2>&1; then
	kustomize=(kubectl kustomize)
elif command -v kustomize >/dev/null; then
	kustomize=(kustomize build)
else
	kustomize=(go run sigs.k8s.io/kustomize/kustomize/v5@v5.8.2 build)
fi
builds=(base overlays/example overlays/example-keda monitoring cert-manager)
for d in "${builds[@]}"; do
	f=$out/$(echo "$d" | tr / _).yaml
	if "${kustomize[@]}" "$here/$d" >"$f" 2>"$out/err"; then
		say "kustomize build $d: ok ($(grep -c '^kind:' "$f") resources)"
	else
		say "kustomize build $d: FAILED"
		cat "$out/err" >&2
		failed=1
	fi
done
[[ $failed == 0 ]] || { echo "validate.sh: kustomize failed" >&2; exit 1; }

# ---------------------------------------------------------------------------------------- 2. flags
if python3 -c 'import yaml' 2>/dev/null && { [[ -n ${CLICKSTREAM_BIN:-} ]] || command -v go >/dev/null; }; then
	if [[ -n ${CLICKSTREAM_BIN:-} ]] && cp "$CLICKSTREAM_BIN" "$out/clickstream" ||
		(cd "$repo" && go build -o "$out/clickstream" ./cmd/clickstream) 2>"$out/err"; then
		# every clickstream container of the example overlay, its $(VAR)s replaced by a placeholder
		if ! python3 - "$out/clickstream" "$out/overlays_example.yaml" "$repo/deploy/compose.yaml" <<'EOF'; then
import re, subprocess, sys, yaml
binary, rendered, compose = sys.argv[1:4]
ok = True
# variables that set no flag: secrets, read from the environment only
SECRETS = {"CLICKSTREAM_ETCD_PASSWORD", "CLICKSTREAM_ES_PASSWORD", "CLICKSTREAM_ES_API_KEY"}
flags_of = {}

def check(what, args, env):
    """Parses args with the binary; every CLICKSTREAM_ variable of env must name one of its flags."""
    global ok
    args = [re.sub(r"\$\(([A-Za-z_][A-Za-z0-9_]*)\)", "placeholder", a) for a in args]
    r = subprocess.run([binary, *args, "-h"], capture_output=True, text=True)
    if r.returncode != 0:
        ok = False
        errs = [l for l in r.stderr.splitlines() if l and not l.startswith((" ", "\t", "Usage", "Flags"))]
        print(f"== flags of {what}: FAILED: " + "; ".join(errs[:3]))
        return
    flags = set(re.findall(r"--([a-z0-9-]+)", r.stdout))
    bad = [v for v in env if v.startswith("CLICKSTREAM_") and v not in SECRETS
           and v[len("CLICKSTREAM_"):].lower().replace("_", "-") not in flags]
    if bad:
        ok = False
        print(f"== flags of {what}: FAILED: {', '.join(bad)} set no flag of `{args[0]}`")
    else:
        print(f"== flags of {what}: ok")

# every clickstream container of the example overlay, its $(VAR)s replaced by a placeholder; its own
# env entries (not the shared ConfigMap, which every command reads)
for doc in yaml.safe_load_all(open(rendered)):
    if not doc or doc.get("kind") not in ("Deployment", "StatefulSet", "Job", "CronJob"):
        continue
    spec = doc["spec"]
    if doc["kind"] == "CronJob":
        spec = spec["jobTemplate"]["spec"]
    for c in spec["template"]["spec"].get("containers", []):
        if "clickstream" not in c.get("image", "") or not c.get("args"):
            continue
        check(f"{doc['kind']} {doc['metadata']['name']} ({c['args'][0]})", c["args"], [e["name"] for e in c.get("env", [])])

# every clickstream service of the compose file, and what it refers to
d = yaml.safe_load(open(compose))
services, volumes = d.get("services", {}), set(d.get("volumes") or {})
shared = set(d.get("x-clickstream-env") or {})
for name, svc in services.items():
    for dep in svc.get("depends_on") or {}:
        if dep not in services:
            ok = False
            print(f"== compose {name}: FAILED: depends on unknown service {dep}")
    for v in svc.get("volumes") or []:
        src = v.get("source") if isinstance(v, dict) else v.split(":")[0]
        if src and not src.startswith((".", "/")) and src not in volumes:
            ok = False
            print(f"== compose {name}: FAILED: undeclared volume {src}")
    if svc.get("image") != "clickstream:dev" or not svc.get("command"):
        continue
    # the shared x-clickstream-env is read by every command, like the ConfigMap: not checked
    own = [v for v in svc.get("environment") or {} if v not in shared]
    check(f"compose {name} ({svc['command'][0]})", svc["command"], own)
sys.exit(0 if ok else 1)
EOF
			failed=1
		fi
	else
		say "flags: SKIPPED (go build ./cmd/clickstream failed)"
		head -5 "$out/err" >&2
	fi
else
	say "flags: SKIPPED (needs python3 with PyYAML, and go or CLICKSTREAM_BIN)"
fi

# ----------------------------------------------------------------------------------- 3. kubeconform
if $install; then
	mkdir -p "$cache/bin"
	if [[ ! -x $cache/bin/kubeconform ]]; then
		say "installing kubeconform $kubeconform_version into $cache/bin"
		GOBIN=$cache/bin go install "github.com/yannh/kubeconform/cmd/kubeconform@$kubeconform_version"
	fi
	if [[ ! -x $cache/venv/bin/python ]] || ! "$cache/venv/bin/python" -c 'import kubernetes_validate' 2>/dev/null; then
		say "installing kubernetes-validate $kubernetes_validate_version (schemas) into $cache/venv"
		python3 -m venv "$cache/venv"
		"$cache/venv/bin/pip" install -q "kubernetes-validate==$kubernetes_validate_version"
	fi
fi

kc=${KUBECONFORM:-}
if [[ -z $kc ]]; then
	for c in "$(command -v kubeconform || true)" "$(go env GOPATH 2>/dev/null)/bin/kubeconform" "$cache/bin/kubeconform"; do
		if [[ -n $c && -x $c && ! -d $c ]]; then kc=$c; break; fi
	done
fi

# schema folders: $K8S_SCHEMA_DIR as is, or kubernetes-validate's, rewritten into the cache
schemas=${K8S_SCHEMA_DIR:-}
if [[ -z $schemas ]]; then
	src=
	for py in "$cache/venv/bin/python" python3; do
		if src=$("$py" -c 'import kubernetes_validate, os; print(os.path.join(os.path.dirname(kubernetes_validate.__file__), "kubernetes-json-schema"))' 2>/dev/null); then
			break
		fi
		src=
	done
	if [[ -n $src && -d $src ]]; then
		schemas=$cache/schemas
		for v in $versions; do
			d=v$v-local-strict
			[[ -f $schemas/$d/.ready ]] && continue
			if [[ ! -d $src/$d ]]; then
				echo "validate.sh: kubernetes-validate has no schemas for $v" >&2
				exit 1
			fi
			rm -rf "$schemas/$d.tmp" && mkdir -p "$schemas" && cp -r "$src/$d" "$schemas/$d.tmp"
			# references point at https://kubernetes.io/api/_definitions.json (the package resolves them
			# itself): drop the $id and make them file-relative, so that nothing is fetched
			sed -i -e 's#"\$id": "https://kubernetes.io/[^"]*"#"$comment": "$id removed for offline validation"#' \
				-e 's#"/api/_definitions.json#"_definitions.json#g' "$schemas/$d.tmp"/*.json
			touch "$schemas/$d.tmp/.ready"
			rm -rf "${schemas:?}/$d" && mv "$schemas/$d.tmp" "$schemas/$d"
		done
	fi
fi

if [[ -z $kc ]]; then
	say "kubeconform: SKIPPED (not installed: run with --install, or go install github.com/yannh/kubeconform/cmd/kubeconform@$kubeconform_version)"
elif [[ -z $schemas ]]; then
	say "kubeconform: SKIPPED (no local schemas: run with --install, or set K8S_SCHEMA_DIR)"
else
	for v in $versions; do
		if [[ -d $schemas/v$v-local-strict ]]; then
			loc="$schemas/{{ .NormalizedKubernetesVersion }}-local{{ .StrictSuffix }}/{{ .ResourceKind }}{{ .KindSuffix }}.json"
		else
			loc="$schemas/{{ .NormalizedKubernetesVersion }}-standalone{{ .StrictSuffix }}/{{ .ResourceKind }}{{ .KindSuffix }}.json"
		fi
		for d in "${builds[@]}"; do
			f=$out/$(echo "$d" | tr / _).yaml
			# -schema-location without "default": local files only, nothing is downloaded
			if res=$("$kc" -strict -summary -kubernetes-version "$v" -schema-location "$loc" \
				-skip ServiceMonitor,Certificate,Issuer,ScaledObject "$f" 2>&1); then
				say "kubeconform $v $d: ${res##*$'\n'}"
			else
				say "kubeconform $v $d: FAILED"
				echo "$res" | sed "s#$out/##" >&2
				failed=1
			fi
		done
	done
fi

# ------------------------------------------------------------------------------------------- 4. KEDA
if python3 -c 'import yaml' 2>/dev/null; then
	for d in "${builds[@]}"; do
		f=$out/$(echo "$d" | tr / _).yaml
		if ! python3 - "$d" "$f" <<'EOF'; then
import re, sys, yaml
build, rendered = sys.argv[1], sys.argv[2]
docs = [d for d in yaml.safe_load_all(open(rendered)) if d]
ns = lambda d: d["metadata"].get("namespace", "")
deployments = {(ns(d), d["metadata"]["name"]) for d in docs if d["kind"] == "Deployment"}
hpas = {(ns(d), d["spec"]["scaleTargetRef"]["name"]) for d in docs
        if d["kind"] == "HorizontalPodAutoscaler" and d["spec"]["scaleTargetRef"].get("kind") == "Deployment"}
errs, n = [], 0
for d in docs:
    if d["kind"] != "ScaledObject":
        continue
    n += 1
    name, spec = d["metadata"]["name"], d.get("spec") or {}
    ref = spec.get("scaleTargetRef") or {}
    target = (ns(d), ref.get("name"))
    if ref.get("kind", "Deployment") != "Deployment" or target not in deployments:
        errs.append(f"{name}: scaleTargetRef {ref} is no Deployment of this build")
    if target in hpas:
        errs.append(f"{name}: Deployment {ref.get('name')} also has a HorizontalPodAutoscaler (they would fight)")
    lo, hi = spec.get("minReplicaCount", 0), spec.get("maxReplicaCount", 100)
    if not (isinstance(lo, int) and isinstance(hi, int) and 0 <= lo <= hi):
        errs.append(f"{name}: minReplicaCount {lo} / maxReplicaCount {hi}")
    triggers = spec.get("triggers") or []
    if not triggers:
        errs.append(f"{name}: no triggers")
    for t in triggers:
        md = t.get("metadata") or {}
        if not t.get("type") or any(not isinstance(v, str) for v in md.values()):
            errs.append(f"{name}: trigger {t.get('type')}: needs a type and string metadata values")
        if t.get("type") == "prometheus":
            for k in ("serverAddress", "query", "threshold"):
                if not md.get(k):
                    errs.append(f"{name}: prometheus trigger without {k}")
            if not re.fullmatch(r"[0-9]+(\.[0-9]+)?", md.get("threshold", "")):
                errs.append(f"{name}: prometheus threshold {md.get('threshold')!r} is not a number")
if errs:
    print(f"== keda {build}: FAILED: " + "; ".join(errs))
    sys.exit(1)
if n:
    print(f"== keda {build}: ok ({n} ScaledObject)")
EOF
			failed=1
		fi
	done
else
	say "keda: SKIPPED (needs python3 with PyYAML)"
fi

if [[ $failed != 0 ]]; then
	echo "validate.sh: FAILED" >&2
	exit 1
fi
say "all checks passed"
