"""End-to-end cases: one test per way the shipped server and link failed, through
the public ways in (``python -m syncserver``, ``app.link``, raw websocket JSON),
against real processes on port 0.

1. two processes open one device      (test_two_processes_one_device)
2. server history reset               (test_history_reset)
3. writes with a stolen device id     (test_stolen_device_id)
4. frames bigger than the link takes  (test_oversized_frames)
5. deeply nested values               (test_nested_values)
6. backend outage                     (test_backend_outage)
7. SIGTERM with writes queued         (test_shutdown)
8. device killed right after a tap    (test_kill_after_tap)
"""
