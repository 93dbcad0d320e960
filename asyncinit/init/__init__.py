"""PID 1: the lifecycle (async orchestration), then the workload's process."""
