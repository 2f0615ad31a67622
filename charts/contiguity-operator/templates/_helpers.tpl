{{/* Chart name, truncated to the 63 characters a label value allows. */}}
{{- define "contiguity-operator.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/*
Prefix of every object name: fullnameOverride, else the release name, plus the chart name when
the release name does not already contain it.
*/}}
{{- define "contiguity-operator.fullname" -}}
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

{{/* chart-version, for the helm.sh/chart label. */}}
{{- define "contiguity-operator.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* Labels of every object. */}}
{{- define "contiguity-operator.labels" -}}
helm.sh/chart: {{ include "contiguity-operator.chart" . }}
{{ include "contiguity-operator.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/component: operator
app.kubernetes.io/part-of: contiguity-operator
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- end }}

{{/* Labels that select the operator pods (immutable once installed). */}}
{{- define "contiguity-operator.selectorLabels" -}}
app.kubernetes.io/name: {{ include "contiguity-operator.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{/* The ServiceAccount the operator runs as. */}}
{{- define "contiguity-operator.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "contiguity-operator.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- default "default" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{/* The image reference: repository@digest, else repository:tag (tag defaults to appVersion). */}}
{{- define "contiguity-operator.image" -}}
{{- if .Values.image.digest }}
{{- printf "%s@%s" .Values.image.repository .Values.image.digest }}
{{- else }}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) }}
{{- end }}
{{- end }}

{{/* "true" when leader election is on: asked for, or required by more than one replica. */}}
{{- define "contiguity-operator.leaderElect" -}}
{{- if or .Values.leaderElection.enabled (gt (int .Values.replicaCount) 1) }}true{{ else }}false{{ end }}
{{- end }}

{{/* Name of the leader-election Lease. */}}
{{- define "contiguity-operator.leaseName" -}}
{{- default (include "contiguity-operator.fullname" .) .Values.leaderElection.leaseName }}
{{- end }}

{{/* Name of the Secret holding the default token, empty when there is none. */}}
{{- define "contiguity-operator.tokenSecretName" -}}
{{- if and .Values.contiguity.token .Values.contiguity.existingSecret }}
{{- fail "set contiguity.token or contiguity.existingSecret, not both" }}
{{- end }}
{{- if .Values.contiguity.existingSecret }}
{{- .Values.contiguity.existingSecret }}
{{- else if .Values.contiguity.token }}
{{- printf "%s-token" (include "contiguity-operator.fullname" .) }}
{{- end }}
{{- end }}

{{/* Key of the token in that Secret. */}}
{{- define "contiguity-operator.tokenSecretKey" -}}
{{- if .Values.contiguity.existingSecret }}{{ .Values.contiguity.existingSecretKey }}{{ else }}token{{ end }}
{{- end }}

{{/* Directory the token Secret is mounted at; the file inside it is named "token". */}}
{{- define "contiguity-operator.tokenDir" -}}
/var/run/secrets/contiguity
{{- end }}

{{/*
The rules the operator needs on the resources it manages, shared by the ClusterRole
(cluster-wide mode) and the per-namespace Roles (watchNamespaces). Every rule says why; the
packaging e2e runs the operator with exactly these permissions.
*/}}
{{- define "contiguity-operator.operatorRules" -}}
# NumberLease and LeaseFailover: list + watch feed the controllers' caches (and the start-up check
# that the CRDs are installed); get re-reads one object before a decision that must not act on a
# stale cache (e.g. before a create at Contiguity).
- apiGroups: ["contiguity.com"]
  resources: ["numberleases", "leasefailovers"]
  verbs: ["get", "list", "watch"]
# NumberLease and LeaseFailover: patch adds and removes the finalizers
# (contiguity.com/terminate-lease, contiguity.com/reset-failover) that make deletion terminate
# the lease or reset the failover first. The operator never updates or deletes these objects.
- apiGroups: ["contiguity.com"]
  resources: ["numberleases", "leasefailovers"]
  verbs: ["patch"]
# Status subresources: the operator writes .status (conditions, lease id, billing) by
# server-side apply, which is a patch; it never writes spec through them.
- apiGroups: ["contiguity.com"]
  resources: ["numberleases/status", "leasefailovers/status"]
  verbs: ["patch"]
# Secrets: a NumberLease may name its API token in spec.credentialsSecretRef. The operator watches
# Secret metadata (list, watch) so a rotated token re-triggers the resources that use it, and
# reads the referenced Secret's value on demand (get). Values are never logged or copied.
- apiGroups: [""]
  resources: ["secrets"]
  verbs: ["get", "list", "watch"]
# Events (events.k8s.io): Normal events such as Leased / FailoverConfigured and Warning events on
# failures, on the resources themselves. Each is created once and never updated.
- apiGroups: ["events.k8s.io"]
  resources: ["events"]
  verbs: ["create"]
{{- end }}
