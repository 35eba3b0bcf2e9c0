{{/* vim: set filetype=mustache: */}}

{{/* ---------------------------------------------------------------- names */}}

{{- define "users-service.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "users-service.fullname" -}}
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

{{/* Name of a sub-object: <fullname>-<suffix>, the prefix cut so that StatefulSet pod names and
     hash-suffixed Job names stay within 63 characters. Usage: include "users-service.componentName" (list . "mysql") */}}
{{- define "users-service.componentName" -}}
{{- $ctx := index . 0 -}}
{{- printf "%s-%s" (include "users-service.fullname" $ctx | trunc 40 | trimSuffix "-") (index . 1) -}}
{{- end -}}

{{- define "users-service.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "users-service.serviceAccountName" -}}
{{- if .Values.serviceAccount.create -}}
{{- default (include "users-service.fullname" .) .Values.serviceAccount.name -}}
{{- else -}}
{{- default "default" .Values.serviceAccount.name -}}
{{- end -}}
{{- end -}}

{{- define "users-service.mysqlName" -}}
{{- include "users-service.componentName" (list . "mysql") -}}
{{- end -}}

{{- define "users-service.configMapName" -}}
{{- include "users-service.componentName" (list . "config") -}}
{{- end -}}

{{/* ---------------------------------------------------------------- labels
     Kubernetes recommended labels. Selector labels are the immutable subset. */}}

{{- define "users-service.selectorLabels" -}}
app.kubernetes.io/name: {{ include "users-service.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}

{{- define "users-service.labels" -}}
helm.sh/chart: {{ include "users-service.chart" . }}
{{ include "users-service.selectorLabels" . }}
app.kubernetes.io/version: {{ include "users-service.imageTag" . | quote }}
app.kubernetes.io/part-of: users-service
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- with .Values.commonLabels }}
{{ toYaml . }}
{{- end }}
{{- end -}}

{{/* Labels of one component. Usage: include "users-service.componentLabels" (list . "web") */}}
{{- define "users-service.componentLabels" -}}
{{ include "users-service.labels" (index . 0) }}
app.kubernetes.io/component: {{ index . 1 }}
{{- end -}}

{{/* The database pod template's labels: its own image's version and no chart label, so an app
     or chart upgrade leaves the StatefulSet's pod template, and so the database, untouched. */}}
{{- define "users-service.databasePodLabels" -}}
{{ include "users-service.componentSelectorLabels" (list . "database") }}
app.kubernetes.io/version: {{ .Values.mysql.image.tag | quote }}
app.kubernetes.io/part-of: users-service
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- with .Values.commonLabels }}
{{ toYaml . }}
{{- end }}
{{- end -}}

{{- define "users-service.componentSelectorLabels" -}}
{{ include "users-service.selectorLabels" (index . 0) }}
app.kubernetes.io/component: {{ index . 1 }}
{{- end -}}

{{- define "users-service.annotations" -}}
{{- with .Values.commonAnnotations }}
{{ toYaml . }}
{{- end }}
{{- end -}}

{{/* ---------------------------------------------------------------- images */}}

{{- define "users-service.imageTag" -}}
{{- .Values.image.tag | default .Chart.AppVersion | toString -}}
{{- end -}}

{{- define "users-service.image" -}}
{{- if and .Values.image.digest (toString .Values.image.tag) -}}
{{- /* repo:tag@digest: the digest decides what runs and the tag stays readable. It is also the
       exact reference skaffold pushes (skaffold.yaml sets all three), by which its file sync
       finds the pods to copy into. */ -}}
{{- printf "%s:%s@%s" .Values.image.repository (toString .Values.image.tag) .Values.image.digest -}}
{{- else if .Values.image.digest -}}
{{- printf "%s@%s" .Values.image.repository .Values.image.digest -}}
{{- else -}}
{{- printf "%s:%s" .Values.image.repository (include "users-service.imageTag" .) -}}
{{- end -}}
{{- end -}}

{{- define "users-service.mysqlImage" -}}
{{- if .Values.mysql.image.digest -}}
{{- printf "%s@%s" .Values.mysql.image.repository .Values.mysql.image.digest -}}
{{- else -}}
{{- printf "%s:%s" .Values.mysql.image.repository (toString .Values.mysql.image.tag) -}}
{{- end -}}
{{- end -}}

{{- define "users-service.imagePullSecrets" -}}
{{- with .Values.imagePullSecrets -}}
imagePullSecrets:
  {{- toYaml . | nindent 2 }}
{{- end -}}
{{- end -}}

{{/* ---------------------------------------------------------------- database settings */}}

{{- define "users-service.databaseHost" -}}
{{- if .Values.mysql.enabled -}}
{{- include "users-service.mysqlName" . -}}
{{- else -}}
{{- .Values.externalDatabase.host -}}
{{- end -}}
{{- end -}}

{{- define "users-service.databasePort" -}}
{{- if .Values.mysql.enabled -}}3306{{- else -}}{{- .Values.externalDatabase.port -}}{{- end -}}
{{- end -}}

{{- define "users-service.databaseName" -}}
{{- if .Values.mysql.enabled -}}{{ .Values.mysql.auth.database }}{{- else -}}{{ .Values.externalDatabase.name }}{{- end -}}
{{- end -}}

{{- define "users-service.databaseUser" -}}
{{- if .Values.mysql.enabled -}}{{ .Values.mysql.auth.user }}{{- else -}}{{ .Values.externalDatabase.user }}{{- end -}}
{{- end -}}

{{- define "users-service.databaseMigrateUser" -}}
{{- if .Values.mysql.enabled -}}{{ .Values.mysql.auth.migrateUser }}{{- else -}}{{ .Values.externalDatabase.migrateUser }}{{- end -}}
{{- end -}}

{{/* Secret holding the database passwords (chart-managed only for the in-chart MySQL). */}}
{{- define "users-service.databaseSecretName" -}}
{{- if .Values.mysql.enabled -}}
{{- default (include "users-service.mysqlName" .) .Values.mysql.auth.existingSecret -}}
{{- else -}}
{{- .Values.externalDatabase.existingSecret -}}
{{- end -}}
{{- end -}}

{{- define "users-service.databasePasswordKey" -}}
{{- if .Values.mysql.enabled -}}web-password{{- else -}}{{ .Values.externalDatabase.existingSecretPasswordKey }}{{- end -}}
{{- end -}}

{{- define "users-service.databaseMigratePasswordKey" -}}
{{- if .Values.mysql.enabled -}}migrate-password{{- else -}}{{ .Values.externalDatabase.existingSecretMigratePasswordKey }}{{- end -}}
{{- end -}}

{{/* TLS to the database: a CA file is mounted when externalDatabase.sslCA or sslCAExistingConfigMap is set. */}}
{{- define "users-service.databaseTLS" -}}
{{- if and (not .Values.mysql.enabled) (or .Values.externalDatabase.sslCA .Values.externalDatabase.sslCAExistingConfigMap) -}}true{{- end -}}
{{- end -}}

{{- define "users-service.databaseCAConfigMapName" -}}
{{- default (include "users-service.componentName" (list . "db-ca")) .Values.externalDatabase.sslCAExistingConfigMap -}}
{{- end -}}

{{/* Where secrets and the CA land inside the app containers. */}}
{{- define "users-service.credentialsDir" -}}/etc/users-service/db{{- end -}}
{{- define "users-service.caDir" -}}/etc/users-service/db-ca{{- end -}}

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

{{/* ---------------------------------------------------------------- connection budget
     Peak web pods = (replicaCount or autoscaling.maxReplicas) + updateStrategy.maxSurge (a rolling
     update runs old and new pods side by side). Each worker's pool holds at most database.poolSize
     connections (service/db.py); /readyz opens a short connection of its own next to them, and the
     kubelet runs one readiness probe per pod at a time: + 1 per pod. */}}
{{- define "users-service.maxWebPods" -}}
{{- $max := ternary .Values.autoscaling.maxReplicas .Values.replicaCount .Values.autoscaling.enabled -}}
{{- add $max .Values.updateStrategy.maxSurge -}}
{{- end -}}

{{- define "users-service.connectionDemand" -}}
{{- $perPod := add (mul .Values.web.concurrency .Values.database.poolSize) 1 -}}
{{- $web := mul (include "users-service.maxWebPods" . | int) $perPod -}}
{{- /* + 1 migration connection + the helm test pod and the wait/check initContainers use short-lived ones inside the reserve */ -}}
{{- add $web 1 .Values.database.reservedConnections -}}
{{- end -}}

{{- define "users-service.minPods" -}}
{{- ternary .Values.autoscaling.minReplicas .Values.replicaCount .Values.autoscaling.enabled -}}
{{- end -}}

{{/* ---------------------------------------------------------------- validation
     Bad combinations fail the render (install, upgrade, template, lint) with one clear message. */}}
{{- define "users-service.validate" -}}
{{- if .Values.mysql.enabled -}}
  {{- if .Values.externalDatabase.host -}}
    {{- fail "\n\nusers-service: both mysql.enabled=true and externalDatabase.host are set. Choose one: --set mysql.enabled=false to use the external database, or leave externalDatabase.host empty for the in-chart MySQL." -}}
  {{- end -}}
{{- else -}}
  {{- if not .Values.externalDatabase.host -}}
    {{- fail "\n\nusers-service: no database configured. Either keep mysql.enabled=true (in-chart MySQL, development) or set mysql.enabled=false together with externalDatabase.host and externalDatabase.existingSecret." -}}
  {{- end -}}
  {{- if not .Values.externalDatabase.existingSecret -}}
    {{- fail "\n\nusers-service: externalDatabase.existingSecret is required when mysql.enabled=false (a Secret with the web and migration passwords; keys externalDatabase.existingSecretPasswordKey / existingSecretMigratePasswordKey)." -}}
  {{- end -}}
  {{- if and .Values.externalDatabase.sslCA .Values.externalDatabase.sslCAExistingConfigMap -}}
    {{- fail "\n\nusers-service: set only one of externalDatabase.sslCA (PEM text) and externalDatabase.sslCAExistingConfigMap." -}}
  {{- end -}}
{{- end -}}
{{- if and (eq .Values.migrations.mode "hook") .Values.mysql.enabled -}}
  {{- fail "\n\nusers-service: migrations.mode=hook needs an external database: a pre-install hook runs before the in-chart MySQL (and its Secret) exist. Use migrations.mode=job with mysql.enabled=true." -}}
{{- end -}}
{{- if and .Values.autoscaling.enabled (gt (int .Values.autoscaling.minReplicas) (int .Values.autoscaling.maxReplicas)) -}}
  {{- fail (printf "\n\nusers-service: autoscaling.minReplicas (%d) is greater than autoscaling.maxReplicas (%d)." (int .Values.autoscaling.minReplicas) (int .Values.autoscaling.maxReplicas)) -}}
{{- end -}}
{{- if ge (max (int .Values.database.readTimeoutSeconds) (int .Values.database.writeTimeoutSeconds) | int) (int .Values.web.timeoutSeconds) -}}
  {{- fail (printf "\n\nusers-service: database.readTimeoutSeconds (%d) and database.writeTimeoutSeconds (%d) must be below web.timeoutSeconds (%d): a slow query must fail before gunicorn kills the worker." (int .Values.database.readTimeoutSeconds) (int .Values.database.writeTimeoutSeconds) (int .Values.web.timeoutSeconds)) -}}
{{- end -}}
{{- if and (not (kindIs "invalid" .Values.service.nodePort)) (eq .Values.service.type "ClusterIP") -}}
  {{- fail "\n\nusers-service: service.nodePort is set but service.type is ClusterIP; use service.type=NodePort (or LoadBalancer), or unset service.nodePort." -}}
{{- end -}}
{{- $demand := include "users-service.connectionDemand" . | int -}}
{{- if gt $demand (int .Values.database.maxConnections) -}}
  {{- fail (printf "\n\nusers-service: database connection budget exceeded: %d web pods at peak (%s + updateStrategy.maxSurge %d) x (web.concurrency %d x database.poolSize %d + 1 readiness probe) + 1 migration + database.reservedConnections %d = %d > database.maxConnections %d. Lower the replicas/concurrency/poolSize or raise database.maxConnections (and the server's max_connections)." (include "users-service.maxWebPods" . | int) (ternary (printf "autoscaling.maxReplicas %d" (int .Values.autoscaling.maxReplicas)) (printf "replicaCount %d" (int .Values.replicaCount)) .Values.autoscaling.enabled) (int .Values.updateStrategy.maxSurge) (int .Values.web.concurrency) (int .Values.database.poolSize) (int .Values.database.reservedConnections) $demand (int .Values.database.maxConnections)) -}}
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

{{/* checkov skips that depend on values are written next to the object they concern. */}}
{{/* Annotations of a workload: commonAnnotations plus the checkov skips its image settings need.
     Usage: include "users-service.workloadAnnotations" (list . .Values.image (dict "checkov.io/skip3" "…")) */}}
{{- define "users-service.workloadAnnotations" -}}
{{- $ctx := index . 0 -}}
{{- $image := index . 1 -}}
{{- $ann := dict -}}
{{- if gt (len .) 2 -}}{{- $ann = merge $ann (index . 2) -}}{{- end -}}
{{- if not $image.digest -}}
{{- $_ := set $ann "checkov.io/skip1" "CKV_K8S_43=Images are pinned by tag by default; set image.digest / mysql.image.digest for digest-pinned deploys" -}}
{{- end -}}
{{- if ne $image.pullPolicy "Always" -}}
{{- $_ := set $ann "checkov.io/skip2" "CKV_K8S_15=pullPolicy follows the values; IfNotPresent is needed for images loaded into kind and is safe with immutable tags or digests" -}}
{{- end -}}
{{- $ann = merge $ann ($ctx.Values.commonAnnotations | default dict) -}}
{{- with $ann -}}
annotations:
  {{- toYaml . | nindent 2 }}
{{- end -}}
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
