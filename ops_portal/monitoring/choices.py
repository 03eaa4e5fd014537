from django.db import models


class Metric(models.TextChoices):
    """What the portal samples on every host. Disk usage is one series per mount."""

    CPU_PERCENT = "cpu_percent", "CPU %"
    MEM_PERCENT = "mem_percent", "Memory %"
    LOAD1 = "load1", "Load (1 min)"
    DISK_PERCENT = "disk_percent", "Disk % (per mount)"
    REACHABLE = "reachable", "Reachable (1 or 0)"


class RuleKind(models.TextChoices):
    """What a rule watches: a host metric against a threshold, or the state of a container-level or
    process-level object (evaluated from the state the container watcher and program refreshes keep)."""

    METRIC = "metric", "Host metric"
    CONTAINER_METRIC = "container_metric", "Container metric"
    SERVICE_METRIC = "service_metric", "Swarm service metric"
    PROGRAM_METRIC = "program_metric", "Program metric"
    CONTAINER_NOT_RUNNING = "container_not_running", "Container not running"
    SERVICE_SHORT = "service_short", "Service short of tasks"
    PROGRAM_NOT_RUNNING = "program_not_running", "Program not running"


# Container metrics stored in the series (Series.metric, on the engine's host; mount holds the
# container's key "ctr:<engine id>:<short docker id>"): written by the container stats jobs.
class ContainerMetric(models.TextChoices):
    CPU_PERCENT = "ctr_cpu_percent", "CPU % (of one CPU)"
    MEM_BYTES = "ctr_mem_bytes", "Memory used (bytes)"
    MEM_PERCENT = "ctr_mem_percent", "Memory % of the limit"
    NET_RX = "ctr_net_rx", "Network received (bytes)"
    NET_TX = "ctr_net_tx", "Network sent (bytes)"
    BLOCK_READ = "ctr_blk_read", "Block I/O read (bytes)"
    BLOCK_WRITE = "ctr_blk_write", "Block I/O written (bytes)"
    # Rates of the four counters above between two samples of the minute's sampling job.
    NET_RX_RATE = "ctr_rx_rate", "Network received (bytes/s)"
    NET_TX_RATE = "ctr_tx_rate", "Network sent (bytes/s)"
    BLOCK_READ_RATE = "ctr_blkr_rate", "Block I/O read (bytes/s)"
    BLOCK_WRITE_RATE = "ctr_blkw_rate", "Block I/O written (bytes/s)"


# Each counter since the container started and the rate the sampling job derives from it.
COUNTER_RATES = {ContainerMetric.NET_RX: ContainerMetric.NET_RX_RATE,
                 ContainerMetric.NET_TX: ContainerMetric.NET_TX_RATE,
                 ContainerMetric.BLOCK_READ: ContainerMetric.BLOCK_READ_RATE,
                 ContainerMetric.BLOCK_WRITE: ContainerMetric.BLOCK_WRITE_RATE}


# Swarm service metrics (Series.metric on the service's manager engine's host; mount holds
# "svc:<service row id>"): the average over its running tasks' containers, from each sampling pass.
class ServiceMetric(models.TextChoices):
    CPU_PERCENT = "svc_cpu_percent", "CPU % per task (of one CPU, average of its tasks)"
    MEM_PERCENT = "svc_mem_percent", "Memory % of the limit per task (average of its tasks)"


# Program metrics (Series.metric on the program's host; mount holds "prog:<program id>"): the sums
# over a program's processes, its own and their descendants, written from each process scan.
class ProgramMetric(models.TextChoices):
    CPU_PERCENT = "prog_cpu_percent", "CPU % (of one CPU, all its processes)"
    MEM_BYTES = "prog_mem_bytes", "Memory used (RSS bytes, all its processes)"


# What a rule may watch: host metrics (kind "metric"); for containers (kind "container_metric")
# the figures that are levels or rates, not counters since the container started; for Swarm services their
# tasks' averages; for programs the sums over their processes.
RULE_METRICS = {RuleKind.METRIC: tuple(Metric),
                RuleKind.CONTAINER_METRIC: (ContainerMetric.CPU_PERCENT, ContainerMetric.MEM_PERCENT,
                                            ContainerMetric.MEM_BYTES, *COUNTER_RATES.values()),
                RuleKind.SERVICE_METRIC: tuple(ServiceMetric),
                RuleKind.PROGRAM_METRIC: tuple(ProgramMetric)}
METRIC_KINDS = tuple(RULE_METRICS)
METRIC_LABELS = {**dict(Metric.choices), **dict(ContainerMetric.choices), **dict(ServiceMetric.choices),
                 **dict(ProgramMetric.choices)}


class Comparator(models.TextChoices):
    GT = ">", "above"
    LT = "<", "below"


class Severity(models.TextChoices):
    INFO = "info", "Info"
    WARNING = "warning", "Warning"
    CRITICAL = "critical", "Critical"


class AlertState(models.TextChoices):
    FIRING = "firing", "Firing"
    ACKNOWLEDGED = "acknowledged", "Acknowledged"
    RESOLVED = "resolved", "Resolved"


class SubjectKind(models.TextChoices):
    """What an alert is about: a host (metric rules, drift), or an object of another level (a
    container's or a program's crash loop); empty for environment-wide alerts (a site's queue)."""

    HOST = "host", "Host"
    CONTAINER = "container", "Container"
    SERVICE = "service", "Swarm service"
    PROGRAM = "program", "Program"


OPEN_STATES = (AlertState.FIRING, AlertState.ACKNOWLEDGED)
# Every allowed state change. Alerts change state only in services.
TRANSITIONS = {
    AlertState.FIRING: {AlertState.ACKNOWLEDGED, AlertState.RESOLVED},
    AlertState.ACKNOWLEDGED: {AlertState.RESOLVED},
}

# Where alerts come from: "rule" for rules (metric and state), anything else is an external source
# (configuration drift, compliance) raised through services.raise_external().
RULE_SOURCE = "rule"

# Resolutions of metrics: raw samples and the rollups (seconds per bucket).
RAW, FIVE_MINUTES, HOURLY = 0, 300, 3600
STEPS = {"raw": RAW, "5m": FIVE_MINUTES, "1h": HOURLY}


# The job action that samples metrics (job_actions.py) and the system jobs that run it (tasks.py).
COLLECT_ACTION = "host.metrics"
# The job action that samples the running containers of engines (containers/job_actions.py).
CONTAINER_STATS_ACTION = "engine.container_stats"
SAMPLING_ACTIONS = (COLLECT_ACTION, CONTAINER_STATS_ACTION)
