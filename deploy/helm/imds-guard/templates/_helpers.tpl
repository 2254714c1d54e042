{{/*
Names, labels, and the config every other template reads.
*/}}

{{- define "imds-guard.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{/* The objects' name: the release's, or <release>-<chart> when it does not contain the chart's. */}}
{{- define "imds-guard.fullname" -}}
{{- if .Values.fullnameOverride -}}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- $name := default .Chart.Name .Values.nameOverride -}}
{{- if contains $name .Release.Name -}}
{{- .Release.Name | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name $name | trunc 63 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}
{{- end -}}

{{- define "imds-guard.selectorLabels" -}}
app.kubernetes.io/name: {{ include "imds-guard.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}

{{- define "imds-guard.labels" -}}
{{ include "imds-guard.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end -}}

{{- define "imds-guard.image" -}}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) -}}
{{- end -}}

{{/*
Whole numbers as integers. Helm reads the numbers of values files as floats, which TOML would
write as 4096.0 — and the guard's integer settings refuse those. Walks a map in place.
*/}}
{{- define "imds-guard.integers" -}}
{{- $map := . -}}
{{- range $key, $value := $map -}}
{{- if kindIs "map" $value -}}
{{- include "imds-guard.integers" $value -}}
{{- else if kindIs "slice" $value -}}
{{- $items := list -}}
{{- range $value -}}
{{- if kindIs "map" . -}}
{{- include "imds-guard.integers" . -}}
{{- $items = append $items . -}}
{{- else if and (kindIs "float64" .) (eq . (floor .)) -}}
{{- $items = append $items (int64 .) -}}
{{- else -}}
{{- $items = append $items . -}}
{{- end -}}
{{- end -}}
{{- $_ := set $map $key $items -}}
{{- else if and (kindIs "float64" $value) (eq $value (floor $value)) -}}
{{- $_ := set $map $key (int64 $value) -}}
{{- end -}}
{{- end -}}
{{- end -}}

{{/*
Merges the map (index . 1) into the map (index . 0), in place: maps merge key by key, anything
else replaces, null removes. (Sprig's mergeOverwrite would not let false or 0 replace a value.)
*/}}
{{- define "imds-guard.merge" -}}
{{- $into := index . 0 -}}
{{- range $key, $value := index . 1 -}}
{{- if kindIs "invalid" $value -}}
{{- $_ := unset $into $key -}}
{{- else if and (kindIs "map" $value) (kindIs "map" (index $into $key)) -}}
{{- include "imds-guard.merge" (list (index $into $key) $value) -}}
{{- else -}}
{{- $_ := set $into $key $value -}}
{{- end -}}
{{- end -}}
{{- end -}}

{{/*
The config.toml text: config.toml as given, or the cloud's file with the values applied — the
file itself when they change nothing, so that its comments reach the node.
*/}}
{{- define "imds-guard.config" -}}
{{- if .Values.config.toml -}}
{{- .Values.config.toml -}}
{{- else -}}
{{- $path := printf "files/config/%s.toml" .Values.cloud -}}
{{- $file := .Files.Get $path -}}
{{- if not $file -}}
{{- fail (printf "cloud %q: the chart has no %s (aws, gcp, azure, alibaba, oci, openstack)" .Values.cloud $path) -}}
{{- end -}}
{{- $parsed := fromToml $file -}}
{{- if hasKey $parsed "Error" -}}
{{- fail (printf "%s: %s" $path $parsed.Error) -}}
{{- end -}}
{{- $config := deepCopy $parsed -}}
{{- $values := deepCopy (dict "mode" .Values.mode "interfaces" .Values.interfaces "rules" .Values.rules "extraRules" .Values.extraRules "override" .Values.config.override) -}}
{{- include "imds-guard.integers" $values -}}
{{- $_ := set $config.server "mode" $values.mode -}}
{{- $_ := set $config.netfilter "interfaces" $values.interfaces -}}
{{- if kindIs "slice" $values.rules -}}
{{- $_ := set $config "rules" $values.rules -}}
{{- end -}}
{{- if $values.extraRules -}}
{{- $_ := set $config "rules" (concat (default (list) $config.rules) $values.extraRules) -}}
{{- end -}}
{{- include "imds-guard.merge" (list $config (default (dict) $values.override)) -}}
{{- if eq (toToml $config) (toToml $parsed) -}}
{{- $file -}}
{{- else -}}
# imds-guard config: the Helm chart's {{ $path }} with the release's values.
{{ toToml $config -}}
{{- end -}}
{{- end -}}
{{- end -}}

{{/* The config, parsed: a map. */}}
{{- define "imds-guard.configMap" -}}
{{- $config := include "imds-guard.config" . | fromToml -}}
{{- if hasKey $config "Error" -}}
{{- fail (printf "config.toml is not TOML: %s" $config.Error) -}}
{{- end -}}
{{- toJson $config -}}
{{- end -}}

{{/* The port of a listen address ("${HOST_IP}:8181" → 8181). */}}
{{- define "imds-guard.port" -}}
{{- $port := regexFind "[0-9]+$" . -}}
{{- if not $port -}}
{{- fail (printf "listen address %q has no port" .) -}}
{{- end -}}
{{- $port -}}
{{- end -}}
