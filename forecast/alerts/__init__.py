"""Alert delivery, apart from modelling: the alarm rows of ``forecasts`` become webhook messages.

- :mod:`forecast.alerts.webhooks`: Standard Webhooks signing, Alertmanager payloads, the sender
  with retries and the ``alert_deliveries`` log
- :mod:`forecast.alerts.delivery`: the policy (one firing and one resolved message per episode),
  the ``alert_state`` table and :func:`~forecast.alerts.delivery.send_flag_alerts`
"""
