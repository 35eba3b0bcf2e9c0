{{/* vim: set filetype=mustache: */}}

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
