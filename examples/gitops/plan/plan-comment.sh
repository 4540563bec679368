#!/usr/bin/env bash
# Plans the manifests of a pull request and posts the plan as a comment on it (GitHub or GHES),
# or prints it when no pull request is named. Runs on any CI with bash, curl and jq.
#
#   MANIFESTS             file or directory of manifests, as the change would apply them
#   GHES_OAUTH_OPERATOR   how to run the binary (default: ghes-oauth-operator on PATH; the
#                         workflow beside this script runs the image with docker instead)
#   PLAN_ARGS             more `plan` flags (default: --prune)
#   GITHUB_TOKEN, GITHUB_API_URL, GITHUB_REPOSITORY, PR_NUMBER
#                         where to comment; without PR_NUMBER the plan goes to stdout
#
# Exit status: 0 when the plan was made (changes or not), 1 when it could not be made or the
# change holds a configuration error the operator would report (the comment says which).
set -euo pipefail

: "${MANIFESTS:?set MANIFESTS to the manifests the pull request applies}"
read -r -a operator <<< "${GHES_OAUTH_OPERATOR:-ghes-oauth-operator}"
read -r -a extra <<< "${PLAN_ARGS:---prune}"

plan="$(mktemp)"
trap 'rm -f "$plan"' EXIT
set +e
"${operator[@]}" plan -f "$MANIFESTS" "${extra[@]}" -o markdown > "$plan"
code=$?
set -e
# 0: no change, 2: changes, 1: an error (the plan is still printed when it could be made).
if [ "$code" -ne 0 ] && [ "$code" -ne 2 ] && [ ! -s "$plan" ]; then
  echo "ghes-oauth-operator plan failed (exit $code)" >&2
  exit 1
fi

if [ -n "${PR_NUMBER:-}" ]; then
  : "${GITHUB_TOKEN:?set GITHUB_TOKEN to comment on the pull request}"
  : "${GITHUB_REPOSITORY:?set GITHUB_REPOSITORY (owner/name)}"
  api="${GITHUB_API_URL:-https://api.github.com}"
  jq -Rs '{body: .}' < "$plan" \
    | curl --fail --silent --show-error -X POST \
        -H "Authorization: Bearer $GITHUB_TOKEN" \
        -H "Accept: application/vnd.github+json" \
        --data @- \
        "$api/repos/$GITHUB_REPOSITORY/issues/$PR_NUMBER/comments" > /dev/null
  echo "posted the plan on pull request #$PR_NUMBER"
else
  cat "$plan"
fi
[ "$code" -eq 1 ] && exit 1
exit 0
