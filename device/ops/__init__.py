"""Operating the gate as a service: structured JSON logs (``jsonlog``), the systemd notify
protocol (``sdnotify``), a relay watchdog (``watchdog``), signal-driven shutdown that leaves the
relay off (``shutdown``), the health/status report (``health``) and the relay self-test
(``relaytest``). Standard library only."""
