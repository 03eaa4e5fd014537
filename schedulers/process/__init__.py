"""The process level: process inventory (psutil or /proc) and program managers (supervisord,
systemd, PM2) behind one interface. Django-free; see base.py."""
