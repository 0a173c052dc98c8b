# Tidewatch on Nomad: two API allocations and two GPU workers (one leads the scheduler, the
# other stands by). Needs the docker driver, and on the GPU clients the nvidia device plugin.
#
# Secrets come from the Nomad variable nomad/jobs/tidewatch (this job's tasks may read it
# without any ACL policy); its items are named like the settings' environment variables and
# only TIDEWATCH_DATABASE_URL is required:
#
#   nomad var put nomad/jobs/tidewatch \
#     TIDEWATCH_DATABASE_URL='postgresql://tidewatch:...@postgres.service.consul:5432/tidewatch' \
#     TIDEWATCH_WEBHOOK_SECRET='...' TIDEWATCH_SMTP_PASSWORD='...' \
#     TIDEWATCH_REPORT_LINK_SECRET='...'
#   nomad job run -var image=registry.example.org/tidewatch deploy/nomad/tidewatch.nomad.hcl
#
# Services are registered in Nomad's own catalogue (provider "nomad"): Prometheus finds them
# with nomad_sd_configs (services tidewatch and tidewatch-worker, both tagged "metrics").

variable "image" {
  type        = string
  description = "Tidewatch image without tag (tags :cpu and :cuda are appended)"
  default     = "tidewatch"
}

variable "datacenters" {
  type    = list(string)
  default = ["*"]
}

locals {
  # Settings both groups share (not secret): TIDEWATCH_<FIELD> for the fields of
  # monitor/settings.py. Role-specific ones are in each task's env block.
  settings = <<-EOT
    TIDEWATCH_LOG_LEVEL=info
    TIDEWATCH_RETENTION_DAYS=30
    TIDEWATCH_ALERTMANAGER_URL=http://alertmanager.service.consul:9093
    TIDEWATCH_GRAFANA_URL=https://grafana.example.org
    TIDEWATCH_PUBLIC_URL=https://tidewatch.example.org
    TIDEWATCH_SMTP_SENDER=tidewatch@example.org
  EOT

  # Every item of the Nomad variable nomad/jobs/tidewatch, as NAME=value: the items are named
  # like the environment variables (see the top of this file), so a missing one simply stays
  # unset (that channel or signing is off).
  secrets = <<-EOT
    {{- with nomadVar "nomad/jobs/tidewatch" }}{{ range .Tuples }}
    {{ .K }}={{ .V }}
    {{- end }}{{ end }}
  EOT
}

job "tidewatch" {
  type        = "service"
  datacenters = var.datacenters

  group "api" {
    count = 2

    network {
      port "http" {
        to = 8000
      }
    }

    # one allocation at a time, the new one healthy (both checks passing) before the next
    update {
      max_parallel     = 1
      health_check     = "checks"
      min_healthy_time = "10s"
      healthy_deadline = "5m"
      auto_revert      = true
    }

    service {
      name     = "tidewatch"
      port     = "http"
      provider = "nomad"
      tags     = ["http", "metrics", "role=serve"]

      # liveness: restart the task when the process stops answering
      check {
        name     = "healthz"
        type     = "http"
        path     = "/healthz"
        interval = "15s"
        timeout  = "5s"

        check_restart {
          limit = 4
          grace = "120s"
        }
      }

      # readiness: the database answers (503 otherwise)
      check {
        name     = "readyz"
        type     = "http"
        path     = "/readyz"
        interval = "10s"
        timeout  = "5s"
      }
    }

    task "serve" {
      driver = "docker"

      config {
        image   = "${var.image}:cpu"
        command = "tidewatch"
        args    = ["serve"]
        ports   = ["http"]
      }

      env {
        TIDEWATCH_SCHEDULER = "false"
        TIDEWATCH_DEVICE    = "cpu"
        TIDEWATCH_PORT      = "8000"
      }

      template {
        destination = "local/settings.env"
        env         = true
        data        = local.settings
      }

      template {
        destination = "secrets/secrets.env"
        env         = true
        data        = local.secrets
      }

      resources {
        cpu    = 1000
        memory = 1024
        # used where memory oversubscription is enabled
        memory_max = 4096
      }
    }
  }

  group "worker" {
    count = 2

    network {
      port "metrics" {
        to = 9464
      }
    }

    # replace one worker at a time; the other keeps (or takes) the scheduler lead
    update {
      max_parallel     = 1
      health_check     = "checks"
      min_healthy_time = "10s"
      healthy_deadline = "10m"
      auto_revert      = true
    }

    service {
      name     = "tidewatch-worker"
      port     = "metrics"
      provider = "nomad"
      tags     = ["metrics", "role=worker"]

      # the worker has no /healthz: its metrics port is its liveness (it reads the database,
      # hence the generous restart limit)
      check {
        name     = "metrics"
        type     = "http"
        path     = "/metrics"
        interval = "20s"
        timeout  = "10s"

        check_restart {
          limit = 6
          grace = "120s"
        }
      }
    }

    task "worker" {
      driver = "docker"
      # SIGTERM stops the scheduler; a run in progress gets this long
      kill_timeout = "60s"

      config {
        image   = "${var.image}:cuda"
        command = "tidewatch"
        args    = ["worker"]
        ports   = ["metrics"]

        # the image's HEALTHCHECK asks the API's /healthz, which a worker does not serve
        healthchecks {
          disable = true
        }
      }

      env {
        TIDEWATCH_DEVICE       = "cuda"
        TIDEWATCH_METRICS_PORT = "9464"
      }

      template {
        destination = "local/settings.env"
        env         = true
        data        = local.settings
      }

      template {
        destination = "secrets/secrets.env"
        env         = true
        data        = local.secrets
      }

      resources {
        cpu        = 2000
        memory     = 4096
        memory_max = 16384

        device "nvidia/gpu" {
          count = 1
        }
      }
    }
  }
}
