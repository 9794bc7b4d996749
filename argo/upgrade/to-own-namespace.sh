#!/usr/bin/env bash
# Moves an install from the shared Argo namespace (the layout before docs/adr/0006: envbot's
# templates, accounts, settings and Secret in `argo`) to envbot's own namespace, and removes what
# the old layout leaves behind. Run it as a cluster admin, after `kubectl apply -k argo/` (which
# creates the new namespace and everything in it) and before deploying the bot with the new
# ARGO_NAMESPACE. It is safe to run again: every step checks first (docs/install.md, "Upgrading").
#
#   argo/upgrade/to-own-namespace.sh [OLD_NAMESPACE [NEW_NAMESPACE [BOT_ACCOUNT]]]
#   # defaults: argo envbot-workflows envbot:envbot (the bot's service account, namespace:name)
#
# Environments (namespaces) are cluster-scoped and keep their labels: the new executors, with the
# same instance, go on extending, destroying, warning about and reaping them. Workflows still
# running in the old namespace must finish first (their pods run as the old accounts), so the
# script stops, removing nothing, while any is running, and says which. The old layout's finished
# Workflows are the history of the environments created before the upgrade: the bot keeps reading
# them (ARGO_PREVIOUS_NAMESPACE, docs/adr/0014) through a read-only Role this script leaves.
set -euo pipefail

old=${1:-argo}
new=${2:-envbot-workflows}
bot=${3:-envbot:envbot}
say() { printf 'upgrade: %s\n' "$*"; }
die() { printf 'upgrade: %s\n' "$*" >&2; exit 1; }

kubectl get namespace "$new" -o name >/dev/null \
  || die "namespace $new does not exist: run 'kubectl apply -k argo/' first"

# 1. No new runs in the old namespace: its CronWorkflows go first.
kubectl -n "$old" delete cronworkflows.argoproj.io -l app.kubernetes.io/part-of=envbot --ignore-not-found -o name

# 2. The settings, the service profiles and the notice Secret follow, unless already there (a
#    fresh `kubectl create -f argo/settings/...` in the new namespace wins).
copy() {  # kind name
  local json
  if kubectl -n "$new" get "$1" "$2" -o name >/dev/null 2>&1; then
    say "$1/$2 already exists in $new: kept as it is"
    return 0
  fi
  if ! json=$(kubectl -n "$old" get "$1" "$2" -o json 2>/dev/null); then
    say "$1/$2 is not in $old: nothing to copy"
    return 0
  fi
  jq --arg ns "$new" '{apiVersion, kind, type, data, metadata: {name: .metadata.name, namespace: $ns,
      labels: (.metadata.labels // {})}} | with_entries(select(.value != null))' <<<"$json" \
    | kubectl create -f - -o name
}
copy configmap envbot-settings
copy configmap envbot-services
copy secret envbot-slack-notifier

# 2b. slack_api_url moved from the settings to the notice Secret (docs/adr/0014): whoever sets it
#     receives the token. A value found in the settings is removed and NOT put into the Secret
#     (whoever could edit the ConfigMap could have planted it); the admin decides, and is told how.
if settings=$(kubectl -n "$new" get configmap envbot-settings -o json 2>/dev/null); then
  url=$(jq -r '.data.slack_api_url // empty' <<<"$settings")
  if [[ -n $url ]]; then
    kubectl -n "$new" patch configmap envbot-settings --type json -o name \
      -p '[{"op": "remove", "path": "/data/slack_api_url"}]'
    if [[ $url == https://slack.com/api/ ]]; then
      say "removed slack_api_url from envbot-settings (Slack's own URL, the default; the key now lives in Secret envbot-slack-notifier)"
    else
      url=${url//[^[:print:]]/?}
      say "WARNING: removed slack_api_url ($url) from envbot-settings and did NOT carry it over: the URL the"
      say "token is sent to is now key slack_api_url of Secret envbot-slack-notifier. If you set it yourself:"
      say "  kubectl -n $new patch secret envbot-slack-notifier --type merge -p '{\"stringData\":{\"slack_api_url\":\"<url>\"}}'"
    fi
  fi
fi

# 3. Wait for the old layout's running workflows: they still need the old accounts.
running=$(kubectl -n "$old" get workflows.argoproj.io -o name \
  -l 'app.kubernetes.io/managed-by=envbot,!workflows.argoproj.io/completed')
if [[ -n $running ]]; then
  die "envbot workflows are still running in $old: ${running//$'\n'/, }; nothing was removed. Run this again once they have finished"
fi
reaper_runs=$(kubectl -n "$old" get workflows.argoproj.io -o name \
  -l 'workflows.argoproj.io/cron-workflow,!workflows.argoproj.io/completed')
for run in $reaper_runs; do
  case $run in
    */env-reaper-* | */env-notifier-*) die "$run is still running in $old; nothing was removed. Run this again once it has finished" ;;
  esac
done

# 4. Prune the old layout by its label, and what older releases left unlabelled by name. The
#    ClusterRoles and ClusterRoleBindings of the current names were re-pointed at the new
#    accounts by `kubectl apply -k argo/`; the admission policies keep denying the old names.
kubectl -n "$old" delete workflowtemplates.argoproj.io,serviceaccounts,roles.rbac.authorization.k8s.io,rolebindings.rbac.authorization.k8s.io,configmaps \
  -l app.kubernetes.io/part-of=envbot --ignore-not-found -o name
kubectl -n "$old" delete secret envbot-slack-notifier --ignore-not-found -o name
kubectl -n "$old" delete serviceaccount envbot-executor --ignore-not-found -o name
kubectl -n "$old" delete rolebindings.rbac.authorization.k8s.io,roles.rbac.authorization.k8s.io envbot-submitter --ignore-not-found -o name
kubectl delete clusterrolebindings.rbac.authorization.k8s.io,clusterroles.rbac.authorization.k8s.io envbot-environments --ignore-not-found -o name

# 5. The bot goes on reading, never writing, the old layout's Workflows: the history of environments
#    created before the upgrade (ARGO_PREVIOUS_NAMESPACE). Delete this Role and RoleBinding once
#    `envbot check` says none of them is left (docs/install.md, "Upgrading").
[[ $bot =~ ^[a-z0-9]([-a-z0-9]*[a-z0-9])?:[a-z0-9]([-a-z0-9.]*[a-z0-9])?$ ]] \
  || die "BOT_ACCOUNT must be the bot's service account as namespace:name (e.g. envbot:envbot)"
kubectl apply -o name -f - <<EOF
apiVersion: rbac.authorization.k8s.io/v1
kind: Role
metadata:
  name: envbot-history-reader
  namespace: $old
  labels: {app.kubernetes.io/name: envbot, app.kubernetes.io/component: history-reader}
rules:
  - apiGroups: [argoproj.io]
    resources: [workflows]
    verbs: [get, list, watch]
---
apiVersion: rbac.authorization.k8s.io/v1
kind: RoleBinding
metadata:
  name: envbot-history-reader
  namespace: $old
  labels: {app.kubernetes.io/name: envbot, app.kubernetes.io/component: history-reader}
roleRef: {apiGroup: rbac.authorization.k8s.io, kind: Role, name: envbot-history-reader}
subjects:
  - {kind: ServiceAccount, namespace: ${bot%%:*}, name: ${bot#*:}}
EOF

say "done: envbot now lives in $new. Deploy the bot with ARGO_NAMESPACE=$new and"
say "ARGO_PREVIOUS_NAMESPACE=$old (manifests/bot): environments created before the upgrade keep their history."
say "The old layout's finished Workflows stay in $old as that record until their TTL (21 days) removes them."
