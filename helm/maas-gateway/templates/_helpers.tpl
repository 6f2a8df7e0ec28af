{{/* Chart name, overridable; trimmed to the 63 characters a DNS label allows. */}}
{{- define "maas-gateway.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/*
Full resource name: release-chart, or just the release when it already contains the chart name.
*/}}
{{- define "maas-gateway.fullname" -}}
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

{{- define "maas-gateway.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* Labels on every resource: the chart's own, then commonLabels (which never replace them). */}}
{{- define "maas-gateway.labels" -}}
{{- $labels := include "maas-gateway.selectorLabels" . | fromYaml }}
{{- $_ := set $labels "helm.sh/chart" (include "maas-gateway.chart" .) }}
{{- $_ = set $labels "app.kubernetes.io/version" (toString .Chart.AppVersion) }}
{{- $_ = set $labels "app.kubernetes.io/managed-by" .Release.Service }}
{{- $_ = set $labels "app.kubernetes.io/part-of" "maas-gateway" }}
{{- toYaml (merge $labels .Values.commonLabels) }}
{{- end }}

{{/* The pods' labels: every resource's, plus podLabels (which never replace them either). */}}
{{- define "maas-gateway.podLabels" -}}
{{- toYaml (merge (include "maas-gateway.labels" . | fromYaml) .Values.podLabels) }}
{{- end }}

{{/*
A value rendered as YAML with the templates in it expanded: extraVolumes, sidecars, extraObjects
and the like, given as YAML or as a string. Call with (dict "value" ... "context" $).
*/}}
{{- define "maas-gateway.render" -}}
{{- if kindIs "string" .value }}
{{- tpl .value .context }}
{{- else }}
{{- tpl (toYaml .value) .context }}
{{- end }}
{{- end }}

{{/* Labels that select the gateway pods; immutable once a Deployment exists. */}}
{{- define "maas-gateway.selectorLabels" -}}
app.kubernetes.io/name: {{ include "maas-gateway.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{- define "maas-gateway.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "maas-gateway.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- default "default" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{/* The Secret the pods read: the operator's existingSecret, or the one this chart renders. */}}
{{- define "maas-gateway.secretName" -}}
{{- default (include "maas-gateway.fullname" .) .Values.existingSecret }}
{{- end }}

{{/* Where the MAAS key file is mounted when maasApiKeyFile.enabled is true. */}}
{{- define "maas-gateway.maasApiKeyDir" -}}
/etc/maas-gateway/maas
{{- end }}

{{/* "true" when the pods need a Secret at all (a MAAS key or a token file). */}}
{{- define "maas-gateway.usesSecret" -}}
{{- if or .Values.config.maasUrl .Values.gatewayTokens.enabled }}true{{ end }}
{{- end }}

{{/* "true" when this chart renders the Secret (then checksum/secret tracks it). */}}
{{- define "maas-gateway.createSecret" -}}
{{- if and (include "maas-gateway.usesSecret" .) (not .Values.existingSecret) }}true{{ end }}
{{- end }}

{{- define "maas-gateway.caConfigMapName" -}}
{{- default (printf "%s-ca" (include "maas-gateway.fullname" .)) .Values.caBundle.existingConfigMap }}
{{- end }}

{{- define "maas-gateway.usesCaBundle" -}}
{{- if or .Values.caBundle.pem .Values.caBundle.existingConfigMap }}true{{ end }}
{{- end }}

{{/* registry/repository:tag@digest, with the tag defaulting to the chart's appVersion. */}}
{{- define "maas-gateway.image" -}}
{{- $repository := .Values.image.repository }}
{{- if .Values.image.registry }}
{{- $repository = printf "%s/%s" (trimSuffix "/" .Values.image.registry) $repository }}
{{- end }}
{{- $ref := printf "%s:%s" $repository (default .Chart.AppVersion .Values.image.tag | toString) }}
{{- if .Values.image.digest }}
{{- $ref = printf "%s@%s" $ref .Values.image.digest }}
{{- end }}
{{- $ref }}
{{- end }}

{{/*
A config value as an environment string. Helm reads YAML numbers as float64, and toString
would print 67108864 as "6.7108864e+07", which the gateway's integer settings reject.
*/}}
{{- define "maas-gateway.envValue" -}}
{{- if and (kindIs "float64" .) (eq . (floor .)) }}
{{- int64 . | toString }}
{{- else }}
{{- toString . }}
{{- end }}
{{- end }}

{{/* Fails the render, with a message an operator can act on, for values that cannot work. */}}
{{- define "maas-gateway.validate" -}}
{{- if and .Values.config.maasUrl (not .Values.existingSecret) (not .Values.secret.maasApiKey) }}
{{- fail "config.maasUrl is set: set secret.maasApiKey or existingSecret (holding secretKeys.maasApiKey)" }}
{{- end }}
{{- if and .Values.gatewayTokens.enabled (not .Values.existingSecret) (not .Values.secret.gatewayTokens) }}
{{- fail "gatewayTokens.enabled is true: set secret.gatewayTokens or existingSecret (holding secretKeys.gatewayTokens)" }}
{{- end }}
{{- if and .Values.networkPolicy.enabled .Values.config.maasUrl (not .Values.networkPolicy.maas.cidrs) }}
{{- fail "networkPolicy.enabled with config.maasUrl set: list MAAS's addresses in networkPolicy.maas.cidrs, or the policy blocks every call to MAAS" }}
{{- end }}
{{- if and .Values.caBundle.pem .Values.caBundle.existingConfigMap }}
{{- fail "set caBundle.pem or caBundle.existingConfigMap, not both" }}
{{- end }}
{{- if and .Values.autoscaling.enabled (lt (int .Values.autoscaling.maxReplicas) (int .Values.autoscaling.minReplicas)) }}
{{- fail "autoscaling.maxReplicas must be at least autoscaling.minReplicas" }}
{{- end }}
{{- end }}
