{{/* vim: set filetype=mustache: */}}

{{- define "photo-gateway.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "photo-gateway.fullname" -}}
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

{{- define "photo-gateway.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{/* Selector labels of the gateway pods. The component label keeps the helm test pod out of the Service. */}}
{{- define "photo-gateway.selectorLabels" -}}
app.kubernetes.io/name: {{ include "photo-gateway.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/component: gateway
{{- end -}}

{{- define "photo-gateway.testSelectorLabels" -}}
app.kubernetes.io/name: {{ include "photo-gateway.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/component: helm-test
{{- end -}}

{{- define "photo-gateway.commonLabels" -}}
helm.sh/chart: {{ include "photo-gateway.chart" . }}
app.kubernetes.io/version: {{ (.Values.image.tag | default .Chart.AppVersion) | toString | trunc 63 | trimSuffix "-" | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: photo-gateway
{{- with .Values.commonLabels }}
{{ toYaml . }}
{{- end }}
{{- end -}}

{{- define "photo-gateway.labels" -}}
{{ include "photo-gateway.selectorLabels" . }}
{{ include "photo-gateway.commonLabels" . }}
{{- end -}}

{{- define "photo-gateway.serviceAccountName" -}}
{{- if .Values.serviceAccount.create -}}
{{- default (include "photo-gateway.fullname" .) .Values.serviceAccount.name -}}
{{- else -}}
{{- default "default" .Values.serviceAccount.name -}}
{{- end -}}
{{- end -}}

{{/* registry/repository:tag, or registry/repository@digest when a digest is given. */}}
{{- define "photo-gateway.image" -}}
{{- $registry := .Values.image.registry -}}
{{- $global := .Values.global | default dict -}}
{{- with (dig "imageRegistry" "" $global) }}{{ $registry = . }}{{ end -}}
{{- $repository := .Values.image.repository -}}
{{- if $registry }}{{ $repository = printf "%s/%s" (trimSuffix "/" $registry) $repository }}{{ end -}}
{{- if .Values.image.digest -}}
{{- printf "%s@%s" $repository .Values.image.digest -}}
{{- else -}}
{{- printf "%s:%s" $repository (.Values.image.tag | default .Chart.AppVersion | toString) -}}
{{- end -}}
{{- end -}}

{{- define "photo-gateway.imagePullSecrets" -}}
{{- $global := .Values.global | default dict -}}
{{- $secrets := concat (dig "imagePullSecrets" list $global) .Values.imagePullSecrets -}}
{{- if $secrets -}}
imagePullSecrets:
{{- range $secrets }}
{{- if kindIs "string" . }}
  - name: {{ . }}
{{- else }}
  - name: {{ .name }}
{{- end }}
{{- end }}
{{- end -}}
{{- end -}}

{{/* Directory holding the credential files inside the container. */}}
{{- define "photo-gateway.secretDir" -}}
/var/run/secrets/photo-gateway
{{- end -}}

{{/* "true" when the chart creates a Secret from inline values. */}}
{{- define "photo-gateway.createSecret" -}}
{{- $c := .Values.credentials -}}
{{- if and (not .Values.workloadIdentity.enabled) (not $c.existingSecret) -}}
{{- if and (eq $c.type "clientSecret") $c.clientSecret -}}true{{- end -}}
{{- if and (eq $c.type "certificate") $c.certificate $c.certificateKey -}}true{{- end -}}
{{- end -}}
{{- end -}}

{{/* Name of the Secret mounted into the pod, or empty when none is. */}}
{{- define "photo-gateway.secretName" -}}
{{- if not .Values.workloadIdentity.enabled -}}
{{- if .Values.credentials.existingSecret -}}
{{- .Values.credentials.existingSecret -}}
{{- else if include "photo-gateway.createSecret" . -}}
{{- include "photo-gateway.fullname" . -}}
{{- end -}}
{{- end -}}
{{- end -}}

{{/* Client ID used for Azure Workload Identity. */}}
{{- define "photo-gateway.workloadIdentityClientId" -}}
{{- .Values.workloadIdentity.clientId | default .Values.config.clientId -}}
{{- end -}}

{{/* Shutdown budget: preStop sleep + drain + in-flight deadline + margin. */}}
{{- define "photo-gateway.graceBudget" -}}
{{- $s := .Values.shutdown -}}
{{- add (int $s.preStopSleepSeconds) (int $s.drainSeconds) (int $s.timeoutSeconds) (int $s.marginSeconds) -}}
{{- end -}}

{{- define "photo-gateway.terminationGracePeriodSeconds" -}}
{{- $budget := include "photo-gateway.graceBudget" . | int -}}
{{- $explicit := int .Values.shutdown.terminationGracePeriodSeconds -}}
{{- if gt $explicit 0 -}}
{{- if lt $explicit $budget -}}
{{- fail (printf "shutdown.terminationGracePeriodSeconds (%d) is below the shutdown budget preStopSleepSeconds + drainSeconds + timeoutSeconds + marginSeconds (%d)" $explicit $budget) -}}
{{- end -}}
{{- $explicit -}}
{{- else -}}
{{- $budget -}}
{{- end -}}
{{- end -}}

{{/* Replicas that run when the cluster is steady: minReplicas under the HPA. */}}
{{- define "photo-gateway.minReplicas" -}}
{{- if .Values.autoscaling.enabled -}}
{{- int .Values.autoscaling.minReplicas -}}
{{- else -}}
{{- int .Values.replicaCount -}}
{{- end -}}
{{- end -}}

{{/* PHOTO_GATEWAY_CALLER_POLICY from config.callerPolicy: `id=grant,grant;id=grant`, ids and grants
     (`users`, `users:read`, ...) sorted so the rendering (and the config checksum) does not depend on map
     or list order. Values from before reads and deletes (bare kinds) render exactly as they did. Empty
     when no grants. */}}
{{- define "photo-gateway.callerPolicy" -}}
{{- $policy := .Values.config.callerPolicy | default dict -}}
{{- $entries := list -}}
{{- range $id := keys $policy | sortAlpha -}}
{{- $kinds := get $policy $id | default list | uniq | sortAlpha -}}
{{- $entries = append $entries (printf "%s=%s" $id (join "," $kinds)) -}}
{{- end -}}
{{- join ";" $entries -}}
{{- end -}}

{{/* PHOTO_GATEWAY_APP_POLICY from config.appOnly.policy (app id -> role -> grants):
     `app/Role=grant,grant;app/Role=grant`, one entry per app and role, sorted by app, then role, then
     grant, for the same stable checksum as the caller policy. Empty when no app is named (daemons refused). */}}
{{- define "photo-gateway.appPolicy" -}}
{{- $policy := .Values.config.appOnly.policy | default dict -}}
{{- $entries := list -}}
{{- range $app := keys $policy | sortAlpha -}}
{{- $roles := get $policy $app | default dict -}}
{{- range $role := keys $roles | sortAlpha -}}
{{- $grants := get $roles $role | default list | uniq | sortAlpha -}}
{{- $entries = append $entries (printf "%s/%s=%s" $app $role (join "," $grants)) -}}
{{- end -}}
{{- end -}}
{{- join ";" $entries -}}
{{- end -}}

{{/* A number of seconds as the gateway parses it: whole numbers without a fraction or exponent, others as given. */}}
{{- define "photo-gateway.seconds" -}}
{{- if eq (float64 .) (float64 (int64 .)) -}}
{{- int64 . -}}
{{- else -}}
{{- float64 . -}}
{{- end -}}
{{- end -}}

{{/* Port of the OTLP collector for the NetworkPolicy: networkPolicy.egress.otlp.port, else the port in
     otel.endpoint, else 443 for https and 80 for http. */}}
{{- define "photo-gateway.otlpPort" -}}
{{- $explicit := int .Values.networkPolicy.egress.otlp.port -}}
{{- if gt $explicit 0 -}}
{{- $explicit -}}
{{- else -}}
{{- $url := urlParse .Values.otel.endpoint -}}
{{- $port := regexFind ":[0-9]+$" $url.host | trimPrefix ":" -}}
{{- if $port -}}
{{- $port -}}
{{- else if eq $url.scheme "https" -}}
443
{{- else -}}
80
{{- end -}}
{{- end -}}
{{- end -}}

{{/* The port redis.url names, or "" when it names none. */}}
{{- define "photo-gateway.redisUrlPort" -}}
{{- regexFind ":[0-9]+$" (urlParse (toString .Values.redis.url)).host | trimPrefix ":" -}}
{{- end -}}

{{/* The port egress to Redis is open on: redis.networkPolicy.port, else the URL's, else 6379. */}}
{{- define "photo-gateway.redisPort" -}}
{{- $explicit := int .Values.redis.networkPolicy.port -}}
{{- if $explicit -}}
{{- $explicit -}}
{{- else -}}
{{- include "photo-gateway.redisUrlPort" . | default "6379" -}}
{{- end -}}
{{- end -}}

{{/* Cross-field checks that a JSON schema cannot express well. */}}
{{- define "photo-gateway.validate" -}}
{{- $c := .Values.credentials -}}
{{- if and .Values.redis.enabled (or (not .Values.redis.url) (not .Values.redis.existingSecret)) -}}
{{- fail "redis.enabled needs redis.url and redis.existingSecret (password, token keys, HMAC key)" -}}
{{- end -}}
{{- if and .Values.redis.enabled .Values.redis.caBundle.existingConfigMap (not (hasPrefix "rediss://" (toString .Values.redis.url))) -}}
{{- fail "redis.caBundle is for a rediss:// (TLS) redis.url: the gateway refuses a CA bundle with a plain redis:// URL" -}}
{{- end -}}
{{- if and .Values.redis.enabled .Values.redis.username (not .Values.redis.secretKeys.password) -}}
{{- fail "redis.username needs redis.secretKeys.password: an ACL user logs in with a password, and the gateway refuses a user without one" -}}
{{- end -}}
{{- $urlPort := include "photo-gateway.redisUrlPort" . -}}
{{- if and .Values.redis.enabled (int .Values.redis.networkPolicy.port) $urlPort (ne (toString (int .Values.redis.networkPolicy.port)) $urlPort) -}}
{{- fail (printf "redis.networkPolicy.port (%d) differs from redis.url's port (%s): egress would be closed to Redis; set 0 to follow the URL" (int .Values.redis.networkPolicy.port) $urlPort) -}}
{{- end -}}
{{- if and .Values.workloadIdentity.enabled (not (include "photo-gateway.workloadIdentityClientId" .)) -}}
{{- fail "workloadIdentity.enabled needs workloadIdentity.clientId or config.clientId" -}}
{{- end -}}
{{- $exp := int .Values.workloadIdentity.tokenExpirationSeconds -}}
{{- if and (gt $exp 0) (or (lt $exp 3600) (gt $exp 86400)) -}}
{{- fail "workloadIdentity.tokenExpirationSeconds must be 0 or between 3600 and 86400" -}}
{{- end -}}
{{- if and (eq $c.type "certificate") (not $c.existingSecret) (or $c.certificate $c.certificateKey) (not (and $c.certificate $c.certificateKey)) -}}
{{- fail "credentials.certificate and credentials.certificateKey must be given together" -}}
{{- end -}}
{{- if and .Values.autoscaling.enabled (gt (int .Values.autoscaling.minReplicas) (int .Values.autoscaling.maxReplicas)) -}}
{{- fail "autoscaling.minReplicas must not exceed autoscaling.maxReplicas" -}}
{{- end -}}
{{- if and .Values.otel.enabled (not .Values.otel.endpoint) -}}
{{- fail "otel.enabled needs otel.endpoint (the collector's OTLP/HTTP base URL, e.g. http://otel-collector.observability:4318)" -}}
{{- end -}}
{{- if and .Values.metrics.serviceMonitor.enabled (not .Values.service.exposeMetrics) -}}
{{- fail "metrics.serviceMonitor.enabled needs service.exposeMetrics" -}}
{{- end -}}
{{- end -}}

{{/*
Pods sharing the global limits (PHOTO_GATEWAY_REDIS_EXPECTED_REPLICAS): redis.expectedReplicas, or
the most pods there can be (autoscaling.maxReplicas, else replicaCount), so that while Redis is
down the pods' shares together never exceed Graph's limits.
*/}}
{{- define "photo-gateway.redisExpectedReplicas" -}}
{{- $n := int .Values.redis.expectedReplicas -}}
{{- if eq $n 0 -}}
{{- $n = .Values.autoscaling.enabled | ternary (int .Values.autoscaling.maxReplicas) (int .Values.replicaCount) -}}
{{- end -}}
{{- max $n 1 -}}
{{- end -}}
