{{/* vim: set filetype=mustache: */}}

{{/* ---------------------------------------------------------------- configuration */}}

{{/* ConfigMap data; also hashed into checksum/config and the migration Job name. */}}
{{- define "users-service.configData" -}}
DATABASE_HOST: {{ include "users-service.databaseHost" . | quote }}
DATABASE_PORT: {{ include "users-service.databasePort" . | quote }}
DATABASE_NAME: {{ include "users-service.databaseName" . | quote }}
DATABASE_USER: {{ include "users-service.databaseUser" . | quote }}
DATABASE_CONNECT_TIMEOUT: {{ .Values.database.connectTimeoutSeconds | quote }}
DATABASE_READ_TIMEOUT: {{ .Values.database.readTimeoutSeconds | quote }}
DATABASE_WRITE_TIMEOUT: {{ .Values.database.writeTimeoutSeconds | quote }}
DATABASE_POOL_SIZE: {{ .Values.database.poolSize | quote }}
DATABASE_POOL_TIMEOUT: {{ .Values.database.poolTimeoutSeconds | quote }}
{{- if include "users-service.databaseTLS" . }}
DATABASE_SSL_CA: {{ printf "%s/ca.crt" (include "users-service.caDir" .) | quote }}
{{- end }}
PORT: "5000"
WEB_CONCURRENCY: {{ .Values.web.concurrency | quote }}
WEB_TIMEOUT: {{ .Values.web.timeoutSeconds | quote }}
WEB_RELOAD: {{ .Values.web.reload | toString | quote }}
GRACEFUL_TIMEOUT: {{ .Values.shutdown.gracefulTimeoutSeconds | quote }}
LOG_LEVEL: {{ .Values.logLevel | quote }}
MAX_BODY_BYTES: {{ .Values.web.maxBodyBytes | quote }}
{{- /* /readyz answers (503 with its reason) before the kubelet's probe gives up. */}}
{{- $probeTimeout := int .Values.probes.readiness.timeoutSeconds }}
READINESS_TIMEOUT: {{ ternary (sub $probeTimeout 1) 0.5 (gt $probeTimeout 1) | toString | quote }}
PROMETHEUS_MULTIPROC_DIR: "/tmp/service-metrics"
WORKER_TMP_DIR: "/dev/shm"
{{- end -}}

{{- define "users-service.configChecksum" -}}
{{- $ca := "" -}}
{{- if include "users-service.databaseTLS" . -}}{{- $ca = printf "%s|%s" .Values.externalDatabase.sslCA .Values.externalDatabase.sslCAExistingConfigMap -}}{{- end -}}
{{- printf "%s\n%s" (include "users-service.configData" .) $ca | sha256sum -}}
{{- end -}}
