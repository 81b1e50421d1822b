"""`whisp hotkey`: a global-hotkey daemon that records, transcribes and delivers."""
