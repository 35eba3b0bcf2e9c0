{{/* ---------------------------------------------------------------- migrations
     mode=job  (default): an ordinary Job whose name ends in a hash of its pod template and of the
               configuration. A new image or new settings give a new Job (Job specs are immutable);
               an unchanged release re-applies the same, finished Job. Works with `helm install --wait`
               (no hook ordering), with the in-chart MySQL (the Job waits for it) and with
               `helm template` / GitOps. Web pods wait in an initContainer until `service check` passes.
     mode=hook: a pre-install,pre-upgrade hook. It runs before the release's ordinary objects exist,
               so it brings its own ConfigMap and ServiceAccount as earlier hooks and requires an
               external database whose Secret exists before the install. */}}

{{- define "users-service.migrations.hook" -}}
{{- eq .Values.migrations.mode "hook" -}}
{{- end -}}

{{- define "users-service.migrations.configMapName" -}}
{{- if eq .Values.migrations.mode "hook" -}}
{{- include "users-service.componentName" (list . "migrate-hook") -}}
{{- else -}}
{{- include "users-service.configMapName" . -}}
{{- end -}}
{{- end -}}

{{- define "users-service.migrations.serviceAccountName" -}}
{{- if eq .Values.migrations.mode "hook" -}}
{{- include "users-service.componentName" (list . "migrate-hook") -}}
{{- else -}}
{{- include "users-service.serviceAccountName" . -}}
{{- end -}}
{{- end -}}

{{- define "users-service.migrations.hookAnnotations" -}}
helm.sh/hook: pre-install,pre-upgrade
helm.sh/hook-weight: {{ . | quote }}
helm.sh/hook-delete-policy: before-hook-creation
{{- end -}}

{{- define "users-service.migrations.podTemplate" -}}
metadata:
  labels:
    {{- include "users-service.componentLabels" (list . "migrate") | nindent 4 }}
spec:
  restartPolicy: Never
  serviceAccountName: {{ include "users-service.migrations.serviceAccountName" . }}
  automountServiceAccountToken: false
  enableServiceLinks: false
  {{- with (include "users-service.imagePullSecrets" .) }}
  {{- . | nindent 2 }}
  {{- end }}
  securityContext:
    {{- include "users-service.podSecurityContext" .Values.podSecurityContext | nindent 4 }}
  initContainers:
    # The in-chart MySQL may still be initialising: wait for its TCP port (mysqld opens it only
    # after the init scripts ran). Bounded by the Job's activeDeadlineSeconds.
    - name: wait-for-database
      image: {{ include "users-service.image" . }}
      imagePullPolicy: {{ .Values.image.pullPolicy }}
      command: {{ include "users-service.waitForDatabaseCommand" . }}
      envFrom:
        - configMapRef:
            name: {{ include "users-service.migrations.configMapName" . }}
      securityContext:
        {{- include "users-service.containerSecurityContext" .Values.podSecurityContext | nindent 8 }}
      resources:
        {{- toYaml .Values.migrations.resources | nindent 8 }}
  containers:
    - name: migrate
      image: {{ include "users-service.image" . }}
      imagePullPolicy: {{ .Values.image.pullPolicy }}
      args: ["migrate"]
      envFrom:
        - configMapRef:
            name: {{ include "users-service.migrations.configMapName" . }}
      env:
        {{- include "users-service.webPasswordEnv" . | nindent 8 }}
        - name: MIGRATE_DATABASE_USER
          value: {{ include "users-service.databaseMigrateUser" . | quote }}
        - name: MIGRATE_DATABASE_PASSWORD_FILE
          value: {{ include "users-service.credentialsDir" . }}/migrate-password
      securityContext:
        {{- include "users-service.containerSecurityContext" .Values.podSecurityContext | nindent 8 }}
      resources:
        {{- toYaml .Values.migrations.resources | nindent 8 }}
      volumeMounts:
        {{- include "users-service.appVolumeMounts" . | nindent 8 }}
  volumes:
    - name: tmp
      emptyDir:
        sizeLimit: {{ .Values.tmpSizeLimit }}
    {{- include "users-service.credentialsVolume" (list . true) | nindent 4 }}
    {{- if include "users-service.databaseTLS" . }}
    - name: db-ca
      configMap:
        name: {{ ternary (include "users-service.migrations.configMapName" .) (include "users-service.databaseCAConfigMapName" .) (and (eq .Values.migrations.mode "hook") (not .Values.externalDatabase.sslCAExistingConfigMap)) }}
        items:
          - key: ca.crt
            path: ca.crt
    {{- end }}
{{- end -}}

{{/* Job name: <fullname>-migrate-<hash of pod template + configuration> (job mode), fixed in hook mode. */}}
{{- define "users-service.migrations.jobName" -}}
{{- if eq .Values.migrations.mode "hook" -}}
{{- include "users-service.componentName" (list . "migrate") -}}
{{- else -}}
{{- $hash := printf "%s\n%s\n%v\n%v" (include "users-service.migrations.podTemplate" .) (include "users-service.configChecksum" .) .Values.migrations.backoffLimit .Values.migrations.activeDeadlineSeconds | sha256sum | trunc 10 -}}
{{- printf "%s-%s" (include "users-service.componentName" (list . "migrate")) $hash -}}
{{- end -}}
{{- end -}}
