{{- define "legate.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "legate.fullname" -}}
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

{{- define "legate.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" }}
{{ include "legate.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- end -}}

{{- define "legate.selectorLabels" -}}
app.kubernetes.io/name: {{ include "legate.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}

{{- define "legate.masterKeySecret" -}}
{{- default (printf "%s-master-key" (include "legate.fullname" .)) .Values.masterKey.existingSecret -}}
{{- end -}}

{{- define "legate.adminTokenSecret" -}}
{{- default (printf "%s-admin-token" (include "legate.fullname" .)) .Values.adminToken.existingSecret -}}
{{- end -}}

{{/*
The pod of the StatefulSet (sled) and of the Deployment (postgres).
*/}}
{{- define "legate.podTemplate" -}}
metadata:
  labels:
    {{- include "legate.selectorLabels" . | nindent 4 }}
  annotations:
    checksum/config: {{ include (print $.Template.BasePath "/configmap.yaml") . | sha256sum }}
    {{- with .Values.podAnnotations }}
    {{- toYaml . | nindent 4 }}
    {{- end }}
spec:
  {{- with .Values.imagePullSecrets }}
  imagePullSecrets:
    {{- toYaml . | nindent 4 }}
  {{- end }}
  automountServiceAccountToken: false
  securityContext:
    {{- toYaml .Values.podSecurityContext | nindent 4 }}
  # SIGTERM: SMTP 421, IMAP BYE, drain, flush the store.
  terminationGracePeriodSeconds: 40
  containers:
    - name: legate
      image: "{{ .Values.image.repository }}:{{ .Values.image.tag | default .Chart.AppVersion }}"
      imagePullPolicy: {{ .Values.image.pullPolicy }}
      command: ["/usr/local/bin/legate"]
      args: ["--config", "/etc/legate/config.toml", "serve"]
      env:
        - name: LEGATE_MASTER_KEY
          valueFrom:
            secretKeyRef:
              name: {{ include "legate.masterKeySecret" . }}
              key: {{ .Values.masterKey.secretKey }}
        {{- if or .Values.adminToken.existingSecret .Values.adminToken.value }}
        - name: LEGATE_BOOTSTRAP_ADMIN_TOKEN
          valueFrom:
            secretKeyRef:
              name: {{ include "legate.adminTokenSecret" . }}
              key: {{ .Values.adminToken.secretKey }}
        {{- end }}
      ports:
        {{- range $name, $p := .Values.ports }}
        - name: {{ $name | trunc 15 }}
          containerPort: {{ $p.container }}
          protocol: TCP
        {{- end }}
      livenessProbe:
        httpGet: { path: /healthz, port: http }
        initialDelaySeconds: 5
        periodSeconds: 10
        timeoutSeconds: 3
        failureThreshold: 6
      readinessProbe:
        httpGet: { path: /readyz, port: http }
        periodSeconds: 5
        timeoutSeconds: 3
        failureThreshold: 3
      securityContext:
        {{- toYaml .Values.securityContext | nindent 8 }}
      resources:
        {{- toYaml .Values.resources | nindent 8 }}
      volumeMounts:
        - name: data
          mountPath: /data
        - name: config
          mountPath: /etc/legate/config.toml
          subPath: config.toml
          readOnly: true
        - name: tmp
          mountPath: /tmp
        {{- if .Values.tls.existingSecret }}
        - name: tls
          mountPath: /etc/legate/tls
          readOnly: true
        {{- end }}
        {{- if eq .Values.storage.backend "postgres" }}
        - name: db
          mountPath: /etc/legate/db
          readOnly: true
        {{- end }}
  volumes:
    {{- if eq .Values.storage.backend "postgres" }}
    # The node's own files (dev keys, the admin socket); the data is in the database.
    - name: data
      emptyDir: { sizeLimit: 1Gi }
    - name: db
      projected:
        defaultMode: 0400
        sources:
          - secret:
              name: {{ .Values.storage.postgres.existingSecret | required "storage.postgres.existingSecret is required with storage.backend=postgres" }}
              items: [{ key: {{ .Values.storage.postgres.secretKey }}, path: url }]
          {{- with .Values.storage.postgres.caSecret }}
          - secret:
              name: {{ . }}
              items: [{ key: ca.crt, path: ca.crt }]
          {{- end }}
    {{- end }}
    - name: config
      configMap:
        name: {{ include "legate.fullname" . }}
    - name: tmp
      emptyDir: { medium: Memory, sizeLimit: 64Mi }
    {{- if .Values.tls.existingSecret }}
    - name: tls
      secret:
        secretName: {{ .Values.tls.existingSecret }}
    {{- end }}
  {{- with .Values.nodeSelector }}
  nodeSelector:
    {{- toYaml . | nindent 4 }}
  {{- end }}
  {{- with .Values.affinity }}
  affinity:
    {{- toYaml . | nindent 4 }}
  {{- end }}
  {{- with .Values.tolerations }}
  tolerations:
    {{- toYaml . | nindent 4 }}
  {{- end }}
{{- end }}
