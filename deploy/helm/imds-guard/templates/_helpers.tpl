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

{{/* The canary's pods (deploy/components/canary): a name of their own, outside the guard's selector. */}}
{{- define "imds-guard.canarySelectorLabels" -}}
app.kubernetes.io/name: {{ include "imds-guard.name" . }}-canary
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
{{- fail (printf "cloud %q: the chart has no %s (aws, gcp, azure, alibaba, oci, openstack, digitalocean, hetzner, tencent, huawei, exoscale, linode)" .Values.cloud $path) -}}
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
{{- $section := include "imds-guard.interceptionValues" . | fromJson -}}
{{- if $section -}}
{{- $_ := set $config "interception" (deepCopy $section) -}}
{{- end -}}
{{- include "imds-guard.merge" (list $config (default (dict) $values.override)) -}}
{{- $sameSection := or (and (not $section) (not (hasKey $config "interception"))) (and $section (eq (toToml (dict "interception" (default (dict) $config.interception))) (toToml (dict "interception" $section)))) -}}
{{- if and $sameSection (eq (toToml (omit $config "interception")) (toToml $parsed)) -}}
{{- $file -}}
{{- if $section }}
{{ include "imds-guard.interceptionSection" . }}
{{- end -}}
{{- else -}}
# imds-guard config: the Helm chart's {{ $path }} with the release's values.
{{ toToml $config -}}
{{- end -}}
{{- end -}}
{{- end -}}

{{/*
The [interception] settings the values make, as JSON: with interception.method=cgroup, the
section deploy/components/cgroup-interception appends (the host paths are the DaemonSet's
mounts); with netfilter, none ({}).
*/}}
{{- define "imds-guard.interceptionValues" -}}
{{- $i := .Values.interception -}}
{{- if eq $i.method "cgroup" -}}
{{- toJson (dict "method" "cgroup" "cgroup_root" "/sys/fs/cgroup" "bpf_pin_dir" "/run/imds-guard/bpf/imds-guard" "host_network_pods" $i.hostNetworkPods "backstop" $i.backstop) -}}
{{- else -}}
{{- toJson (dict) -}}
{{- end -}}
{{- end -}}

{{/*
That section as text, as the component writes it (appended to the cloud's file, and on the
pod template, so that changing it rolls the guards: the method is read at start only).
*/}}
{{- define "imds-guard.interceptionSection" -}}
{{- $i := .Values.interception -}}
[interception]
method = "cgroup"
cgroup_root = "/sys/fs/cgroup"
bpf_pin_dir = "/run/imds-guard/bpf/imds-guard"
host_network_pods = {{ $i.hostNetworkPods }}
backstop = {{ $i.backstop }}
{{ end -}}

{{/* The interception method of the config (a config.toml given whole included). */}}
{{- define "imds-guard.method" -}}
{{- $config := include "imds-guard.configMap" . | fromJson -}}
{{- default "netfilter" (default (dict) $config.interception).method -}}
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
