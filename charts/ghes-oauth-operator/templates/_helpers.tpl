{{/*
The chart name, a DNS label.
*/}}
{{- define "ghes-oauth-operator.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/*
The full name of the release's objects: <release>-<chart>, or the release name when it already
contains the chart name, cut to a DNS label.
*/}}
{{- define "ghes-oauth-operator.fullname" -}}
{{- if .Values.fullnameOverride }}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- $name := default .Chart.Name .Values.nameOverride }}
{{- if contains $name .Release.Name }}
{{- .Release.Name | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- printf "%s-%s" .Release.Name $name | trunc 63 | trimSuffix "-" }}
{{- end }}
{{- end }}
{{- end }}

{{/*
The full name followed by a suffix, the full name cut first so that the whole stays a DNS label
of at most 63 characters: include "ghes-oauth-operator.suffixed" (list . "-metrics").
*/}}
{{- define "ghes-oauth-operator.suffixed" -}}
{{- $root := index . 0 }}
{{- $suffix := index . 1 }}
{{- $fullname := include "ghes-oauth-operator.fullname" $root | trunc (int (sub 63 (len $suffix))) | trimSuffix "-" }}
{{- printf "%s%s" $fullname $suffix }}
{{- end }}

{{/*
The leader Lease: leaderElection.leaseName, else <fullname>-leader (one Lease per release).
Refuses periods the operator would refuse at start.
*/}}
{{- define "ghes-oauth-operator.leaseName" -}}
{{- $le := .Values.leaderElection }}
{{- if not (lt (int $le.renewPeriod) (sub (int $le.leaseDuration) (int $le.retryPeriod))) }}
{{- fail (printf "leaderElection.renewPeriod (%v) must be shorter than leaderElection.leaseDuration (%v) minus leaderElection.retryPeriod (%v)" $le.renewPeriod $le.leaseDuration $le.retryPeriod) }}
{{- end }}
{{- default (include "ghes-oauth-operator.suffixed" (list . "-leader")) $le.leaseName }}
{{- end }}

{{/*
Chart name and version, for the helm.sh/chart label.
*/}}
{{- define "ghes-oauth-operator.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/*
Labels that select the operator's pods; they never change over the release's life.
*/}}
{{- define "ghes-oauth-operator.selectorLabels" -}}
app.kubernetes.io/name: {{ include "ghes-oauth-operator.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{/*
Labels of every object of the chart.
*/}}
{{- define "ghes-oauth-operator.labels" -}}
helm.sh/chart: {{ include "ghes-oauth-operator.chart" . }}
{{ include "ghes-oauth-operator.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/component: operator
app.kubernetes.io/part-of: ghes-oauth-operator
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- end }}

{{/*
The ServiceAccount the operator runs as.
*/}}
{{- define "ghes-oauth-operator.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "ghes-oauth-operator.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- required "serviceAccount.name is required when serviceAccount.create is false" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{/*
The image reference: by digest when image.digest is set, else by tag (default: the chart's
appVersion).
*/}}
{{- define "ghes-oauth-operator.image" -}}
{{- if .Values.image.digest }}
{{- printf "%s@%s" .Values.image.repository .Values.image.digest }}
{{- else }}
{{- $tag := .Values.image.tag | default .Chart.AppVersion | toString }}
{{- if eq $tag "latest" }}
{{- fail "image.tag must not be latest: pin a version so every replica runs the same code" }}
{{- end }}
{{- printf "%s:%s" .Values.image.repository $tag }}
{{- end }}
{{- end }}

{{/*
RBAC rules as YAML list items; the argument is a list of {apiGroups, resources, verbs}.
*/}}
{{- define "ghes-oauth-operator.rules" -}}
{{- range . }}
- apiGroups: {{ toJson .apiGroups }}
  resources: {{ toJson .resources }}
  verbs: {{ toJson .verbs }}
{{- end }}
{{- end }}

{{/*
The release namespace's rules as JSON: the Lease rules only with leader election on.
*/}}
{{- define "ghes-oauth-operator.operatorNamespaceRules" -}}
{{- $rules := list }}
{{- range .Values.rbac.rules.operatorNamespace }}
{{- if or $.Values.leaderElection.enabled (gt (int $.Values.sharding.shards) 0) (not (has "leases" .resources)) }}
{{- $rules = append $rules . }}
{{- end }}
{{- end }}
{{- toJson $rules }}
{{- end }}

{{/*
The ServiceAccount as an RBAC subject.
*/}}
{{- define "ghes-oauth-operator.subject" -}}
- kind: ServiceAccount
  name: {{ include "ghes-oauth-operator.serviceAccountName" . }}
  namespace: {{ .Release.Namespace }}
{{- end }}

{{/*
"true" when a Prometheus Operator object is to be rendered: (list $ .Values.metrics.serviceMonitor
"ServiceMonitor" "serviceMonitor"). With the object enabled: rendered where the cluster serves
monitoring.coreos.com/v1 of its kind, or with renderMode always; refused with failIfMissing where
it does not; skipped with skipIfMissing.
*/}}
{{- define "ghes-oauth-operator.monitoringObject" -}}
{{- $root := index . 0 }}
{{- $values := index . 1 }}
{{- $kind := index . 2 }}
{{- $key := index . 3 }}
{{- $served := $root.Capabilities.APIVersions.Has (printf "monitoring.coreos.com/v1/%s" $kind) }}
{{- if and $values.enabled (eq $values.renderMode "failIfMissing") (not $served) }}
{{- fail (printf "metrics.%s.enabled: the cluster does not serve monitoring.coreos.com/v1 %s (install the Prometheus Operator's CRDs, or set metrics.%s.renderMode=skipIfMissing)" $key $kind $key) }}
{{- end }}
{{- if and $values.enabled (or $served (eq $values.renderMode "always")) }}true{{ end }}
{{- end }}
