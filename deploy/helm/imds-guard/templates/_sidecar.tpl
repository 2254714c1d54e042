{{/*
Sidecar mode, as deploy/sidecar/component adds it to a pod (deploy/sidecar/README.md says what
each part does). For a chart of your own, copy this file into it, or depend on this chart with
node.enabled=false, and in your pod spec:

  initContainers:
    {{- include "imds-guard.sidecar.initContainers" (dict "image" "REGISTRY/imds-guard:0.1.0") | nindent 4 }}
  volumes:
    {{- include "imds-guard.sidecar.volumes" (dict "configMap" "my-workload-imds-guard") | nindent 4 }}

and a ConfigMap of that name whose key config.toml is the workload's policy (inventory.source =
"self", a loopback server.listen, netfilter.sidecar_uid = 1337). Native sidecars: Kubernetes
1.29 or later.
*/}}

{{/* The rule installer and the guard, for initContainers. (dict "image" IMAGE) */}}
{{- define "imds-guard.sidecar.initContainers" -}}
# First: the interception rules, in the pod's own network namespace, before anything else runs.
- name: imds-guard-iptables
  image: {{ .image }}
  args:
    - iptables
    - install
    - --sidecar
    - --config
    - /etc/imds-guard/config.toml
  securityContext:
    runAsUser: 0
    runAsNonRoot: false
    privileged: false
    allowPrivilegeEscalation: false
    readOnlyRootFilesystem: true
    capabilities:
      drop: ["ALL"]
      add: ["NET_ADMIN", "NET_RAW"]
    seccompProfile:
      type: RuntimeDefault
  resources:
    requests:
      cpu: 10m
      memory: 16Mi
    limits:
      memory: 64Mi
  volumeMounts:
    - name: imds-guard-config
      mountPath: /etc/imds-guard
      readOnly: true
# Second: the guard, as a native sidecar; the workload's containers start once it is ready.
- name: imds-guard
  image: {{ .image }}
  restartPolicy: Always
  args: ["run", "--config", "/etc/imds-guard/config.toml"]
  env:
    - name: POD_NAMESPACE
      valueFrom:
        fieldRef:
          fieldPath: metadata.namespace
    - name: POD_NAME
      valueFrom:
        fieldRef:
          fieldPath: metadata.name
    - name: POD_UID
      valueFrom:
        fieldRef:
          fieldPath: metadata.uid
    - name: RUST_LOG
      value: info
  ports:
    - name: imds-guard-adm
      containerPort: 8182
      protocol: TCP
  startupProbe:
    httpGet:
      path: /readyz
      port: imds-guard-adm
    periodSeconds: 1
    failureThreshold: 30
  readinessProbe:
    httpGet:
      path: /readyz
      port: imds-guard-adm
    periodSeconds: 5
  livenessProbe:
    httpGet:
      path: /healthz
      port: imds-guard-adm
    periodSeconds: 10
    failureThreshold: 3
  resources:
    requests:
      cpu: 10m
      memory: 16Mi
    limits:
      memory: 64Mi
  securityContext:
    # The rules exempt exactly this UID (netfilter.sidecar_uid): no other container of the pod
    # may run as 1337.
    runAsUser: 1337
    runAsGroup: 1337
    runAsNonRoot: true
    privileged: false
    allowPrivilegeEscalation: false
    readOnlyRootFilesystem: true
    capabilities:
      drop: ["ALL"]
    seccompProfile:
      type: RuntimeDefault
  volumeMounts:
    - name: imds-guard-config
      mountPath: /etc/imds-guard
      readOnly: true
    - name: imds-guard-podinfo
      mountPath: /etc/podinfo
      readOnly: true
{{- end -}}

{{/* The sidecar's volumes: its policy and the pod's labels. (dict "configMap" NAME) */}}
{{- define "imds-guard.sidecar.volumes" -}}
- name: imds-guard-config
  configMap:
    name: {{ .configMap }}
- name: imds-guard-podinfo
  downwardAPI:
    items:
      - path: labels
        fieldRef:
          fieldPath: metadata.labels
{{- end -}}
