{{/* vim: set filetype=mustache: */}}

{{/* ---------------------------------------------------------------- validation
     Bad combinations of values fail the render (install, upgrade, template, lint) once, with every
     message (as bitnami/common's validations do). Each check below is one define that renders its
     message, or nothing when the values are fine; "users-service.validate" (called from
     configmap.yaml, which every release renders) collects them. The schema (values.schema.json)
     has already refused unknown keys, wrong types and out-of-range numbers. */}}

{{- define "users-service.validate" -}}
{{- $checks := list "database" "externalSecret" "externalCA" "migrationsHook" "autoscaling" "timeouts" "nodePort" "serviceMonitor" "connectionBudget" -}}
{{- $messages := list -}}
{{- range $checks -}}
{{- $messages = append $messages (include (printf "users-service.validate.%s" .) $) -}}
{{- end -}}
{{- $messages = without $messages "" -}}
{{- if $messages -}}
{{- fail (printf "\n\n%s" (join "\n\n" $messages)) -}}
{{- end -}}
{{- end -}}

{{/* Exactly one database: the in-chart MySQL or an external one. */}}
{{- define "users-service.validate.database" -}}
{{- if and .Values.mysql.enabled .Values.externalDatabase.host -}}
users-service: both mysql.enabled=true and externalDatabase.host are set. Choose one: --set mysql.enabled=false to use the external database, or leave externalDatabase.host empty for the in-chart MySQL.
{{- else if and (not .Values.mysql.enabled) (not .Values.externalDatabase.host) -}}
users-service: no database configured. Either keep mysql.enabled=true (in-chart MySQL, development) or set mysql.enabled=false together with externalDatabase.host and externalDatabase.existingSecret.
{{- end -}}
{{- end -}}

{{- define "users-service.validate.externalSecret" -}}
{{- if and (not .Values.mysql.enabled) (not .Values.externalDatabase.existingSecret) -}}
users-service: externalDatabase.existingSecret is required when mysql.enabled=false (a Secret with the web and migration passwords; keys externalDatabase.existingSecretPasswordKey / existingSecretMigratePasswordKey).
{{- end -}}
{{- end -}}

{{- define "users-service.validate.externalCA" -}}
{{- if and (not .Values.mysql.enabled) .Values.externalDatabase.sslCA .Values.externalDatabase.sslCAExistingConfigMap -}}
users-service: set only one of externalDatabase.sslCA (PEM text) and externalDatabase.sslCAExistingConfigMap.
{{- end -}}
{{- end -}}

{{- define "users-service.validate.migrationsHook" -}}
{{- if and (eq .Values.migrations.mode "hook") .Values.mysql.enabled -}}
users-service: migrations.mode=hook needs an external database: a pre-install hook runs before the in-chart MySQL (and its Secret) exist. Use migrations.mode=job with mysql.enabled=true.
{{- end -}}
{{- end -}}

{{- define "users-service.validate.autoscaling" -}}
{{- if and .Values.autoscaling.enabled (gt (int .Values.autoscaling.minReplicas) (int .Values.autoscaling.maxReplicas)) -}}
{{- printf "users-service: autoscaling.minReplicas (%d) is greater than autoscaling.maxReplicas (%d)." (int .Values.autoscaling.minReplicas) (int .Values.autoscaling.maxReplicas) -}}
{{- end -}}
{{- end -}}

{{/* The service refuses this at start too (service/settings.py). */}}
{{- define "users-service.validate.timeouts" -}}
{{- if ge (max (int .Values.database.readTimeoutSeconds) (int .Values.database.writeTimeoutSeconds) | int) (int .Values.web.timeoutSeconds) -}}
{{- printf "users-service: database.readTimeoutSeconds (%d) and database.writeTimeoutSeconds (%d) must be below web.timeoutSeconds (%d): a slow query must fail before gunicorn kills the worker." (int .Values.database.readTimeoutSeconds) (int .Values.database.writeTimeoutSeconds) (int .Values.web.timeoutSeconds) -}}
{{- end -}}
{{- end -}}

{{- define "users-service.validate.nodePort" -}}
{{- if and (not (kindIs "invalid" .Values.service.nodePort)) (eq .Values.service.type "ClusterIP") -}}
users-service: service.nodePort is set but service.type is ClusterIP; use service.type=NodePort (or LoadBalancer), or unset service.nodePort.
{{- end -}}
{{- end -}}

{{/* Without the Prometheus Operator's CRD, `helm install` would fail on the API server with
     "no matches for kind ServiceMonitor": refuse the render instead, saying what to do. */}}
{{- define "users-service.validate.serviceMonitor" -}}
{{- if and .Values.metrics.serviceMonitor.enabled (not (.Capabilities.APIVersions.Has "monitoring.coreos.com/v1/ServiceMonitor")) -}}
users-service: metrics.serviceMonitor.enabled=true, but the cluster serves no monitoring.coreos.com/v1 ServiceMonitor (the Prometheus Operator's CRD). Install the Prometheus Operator (e.g. kube-prometheus-stack) first, or set metrics.serviceMonitor.enabled=false. Rendering offline (helm template, GitOps) for a cluster that has it: pass --api-versions monitoring.coreos.com/v1/ServiceMonitor.
{{- end -}}
{{- end -}}

{{/* See "users-service.connectionDemand" (_database.tpl). */}}
{{- define "users-service.validate.connectionBudget" -}}
{{- $demand := include "users-service.connectionDemand" . | int -}}
{{- if gt $demand (int .Values.database.maxConnections) -}}
{{- printf "users-service: database connection budget exceeded: %d web pods at peak (%s + updateStrategy.maxSurge %d) x (web.concurrency %d x database.poolSize %d + 1 readiness probe) + 1 migration + database.reservedConnections %d = %d > database.maxConnections %d. Lower the replicas/concurrency/poolSize or raise database.maxConnections (and the server's max_connections)." (include "users-service.maxWebPods" . | int) (ternary (printf "autoscaling.maxReplicas %d" (int .Values.autoscaling.maxReplicas)) (printf "replicaCount %d" (int .Values.replicaCount)) .Values.autoscaling.enabled) (int .Values.updateStrategy.maxSurge) (int .Values.web.concurrency) (int .Values.database.poolSize) (int .Values.database.reservedConnections) $demand (int .Values.database.maxConnections) -}}
{{- end -}}
{{- end -}}
