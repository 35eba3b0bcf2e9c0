{{/* vim: set filetype=mustache: */}}

{{/* ---------------------------------------------------------------- shutdown timing
     One relation, rendered from the shutdown.* values:
       terminationGracePeriodSeconds = drainSeconds (preStop) + gracefulTimeoutSeconds (gunicorn) + marginSeconds */}}
{{- define "users-service.terminationGracePeriodSeconds" -}}
{{- add .Values.shutdown.drainSeconds .Values.shutdown.gracefulTimeoutSeconds .Values.shutdown.marginSeconds -}}
{{- end -}}

{{/* The native preStop `sleep` action is alpha (feature gate off) in 1.29 and beta, on by default,
     from 1.30; on 1.29 the API server would drop the field and reject the empty handler. `exec` runs
     the image's own `python -m service sleep` (python is the only binary the image guarantees). */}}
{{- define "users-service.preStop" -}}
{{- $action := .Values.shutdown.preStopAction -}}
{{- if eq $action "auto" -}}
{{- $action = ternary "sleep" "exec" (semverCompare ">=1.30-0" .Capabilities.KubeVersion.Version) -}}
{{- end -}}
{{- if eq $action "sleep" -}}
sleep:
  seconds: {{ .Values.shutdown.drainSeconds }}
{{- else -}}
exec:
  command: ["python", "-m", "service", "sleep", {{ .Values.shutdown.drainSeconds | quote }}]
{{- end -}}
{{- end -}}

{{/* ---------------------------------------------------------------- pod building blocks */}}

{{- define "users-service.podSecurityContext" -}}
runAsNonRoot: true
runAsUser: {{ .runAsUser }}
runAsGroup: {{ .runAsGroup }}
fsGroup: {{ .fsGroup }}
fsGroupChangePolicy: OnRootMismatch
seccompProfile:
  type: RuntimeDefault
{{- end -}}

{{- define "users-service.containerSecurityContext" -}}
runAsNonRoot: true
runAsUser: {{ .runAsUser }}
runAsGroup: {{ .runAsGroup }}
readOnlyRootFilesystem: true
allowPrivilegeEscalation: false
privileged: false
capabilities:
  drop:
    - ALL
seccompProfile:
  type: RuntimeDefault
{{- end -}}

{{/* Environment every app container shares (besides the ConfigMap). */}}
{{- define "users-service.webPasswordEnv" -}}
- name: DATABASE_PASSWORD_FILE
  value: {{ include "users-service.credentialsDir" . }}/web-password
{{- end -}}

{{/* The Secret is mounted as a volume (never subPath) so a rotated password reaches running pods. */}}
{{- define "users-service.credentialsVolume" -}}
{{- $ctx := index . 0 -}}
- name: db-credentials
  secret:
    secretName: {{ include "users-service.databaseSecretName" $ctx }}
    defaultMode: 0440
    items:
      - key: {{ include "users-service.databasePasswordKey" $ctx }}
        path: web-password
      {{- if index . 1 }}
      - key: {{ include "users-service.databaseMigratePasswordKey" $ctx }}
        path: migrate-password
      {{- end }}
{{- end -}}

{{- define "users-service.caVolume" -}}
{{- if include "users-service.databaseTLS" . -}}
- name: db-ca
  configMap:
    name: {{ include "users-service.databaseCAConfigMapName" . }}
    items:
      - key: ca.crt
        path: ca.crt
{{- end }}
{{- end -}}

{{- define "users-service.appVolumeMounts" -}}
- name: tmp
  mountPath: /tmp
- name: db-credentials
  mountPath: {{ include "users-service.credentialsDir" . }}
  readOnly: true
{{- if include "users-service.databaseTLS" . }}
- name: db-ca
  mountPath: {{ include "users-service.caDir" . }}
  readOnly: true
{{- end }}
{{- end -}}

{{/* The init containers' commands: subcommands of the service (service/admin.py), no shell. */}}
{{- define "users-service.waitForSchemaCommand" -}}
["python", "-m", "service", "check", "--wait", "--interval", {{ .Values.probes.startup.periodSeconds | quote }}]
{{- end -}}

{{- define "users-service.waitForDatabaseCommand" -}}
["python", "-m", "service", "wait-for-database", "--interval", "2"]
{{- end -}}
