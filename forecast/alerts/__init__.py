"""Alert delivery, apart from modelling: the alarm rows of ``forecasts`` become webhook messages.

- :mod:`forecast.alerts.webhooks`: Standard Webhooks signing, Alertmanager payloads, the sender
  with retries and the ``alert_deliveries`` log (delivery is at least once; ``webhook-id`` is
  the receiver's key to de-duplicate)
- :mod:`forecast.alerts.transport`: one POST, bounded (a deadline per request, decided by its
  status line), Retry-After, redirects named and not followed
- :mod:`forecast.alerts.delivery`: the policy (one firing and one resolved message per episode,
  a firing update when it escalates) and :func:`~forecast.alerts.delivery.send_flag_alerts`
- :mod:`forecast.alerts.run_lock`: one delivery at a time per warehouse (a ``flock``)
- :mod:`forecast.alerts.sample`: ``polarwatch alerts test`` (a signed sample alert)
- :mod:`forecast.alerts.state`: the ``alert_state`` table (what each episode's receivers were
  sent and get next; escalation updates)
"""
