{{/* vim: set filetype=mustache: */}}

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
