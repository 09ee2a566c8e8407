#!/usr/bin/env bash
# Checks the AWS stack offline, as CI does (.ci/run): cfn-lint, `sam validate --lint`
# and checkov on template.yaml, then a release build of every function with
# cargo-lambda (x86_64, without link-time optimisation unless told: see below; arm64
# needs the aarch64-unknown-linux-gnu target), printing the binaries' sizes. On first use it installs AWS SAM CLI (with cfn-lint), checkov
# and cargo-lambda from PyPI, each into its own virtualenv (their pins conflict).
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
export SAM_CLI_TELEMETRY=0

tool() { # tool VENV PACKAGE EXECUTABLE
  if [ ! -x "$root/$1/bin/$3" ]; then
    echo "scripts/check-infra.sh: installing $2 into $1"
    python3 -m venv "$root/$1"
    "$root/$1/bin/pip" install --quiet "$2"
  fi
}
tool .venv-sam 'aws-sam-cli==1.170.0' sam
tool .venv-checkov 'checkov==3.3.30' checkov
tool .venv-lambda 'cargo-lambda==1.9.2' cargo-lambda

echo "== cfn-lint"
"$root/.venv-sam/bin/cfn-lint" template.yaml
echo "== sam validate --lint"
"$root/.venv-sam/bin/sam" validate --lint --template template.yaml --region us-east-1
echo "== checkov"
"$root/.venv-checkov/bin/checkov" -f template.yaml --framework cloudformation --compact --quiet --skip-download

echo "== cargo lambda build --release"
functions=(webhook-intake contact-enrichment facebook-dispatch token-refresh reconcile)
# The check is that every function builds for Lambda. Without link-time
# optimisation it takes six minutes here instead of twelve (five thin-LTO links on
# two cores), and with 16 codegen units (LLVM working on both cores while one big
# crate compiles) about 6 minutes instead of 8; `sam build` ships the whole release
# profile, which CARGO_PROFILE_RELEASE_LTO=thin CARGO_PROFILE_RELEASE_CODEGEN_UNITS=1
# scripts/check-infra.sh builds too.
export CARGO_PROFILE_RELEASE_LTO=${CARGO_PROFILE_RELEASE_LTO:-off}
export CARGO_PROFILE_RELEASE_CODEGEN_UNITS=${CARGO_PROFILE_RELEASE_CODEGEN_UNITS:-16}
PATH="$root/.venv-lambda/bin:$PATH" cargo lambda build --release --locked "${functions[@]/#/--package=}"
for f in "${functions[@]}"; do
  printf '%-20s %s bytes\n' "$f" "$(wc -c < "target/lambda/$f/bootstrap")"
done
