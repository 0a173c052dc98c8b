"""Grafana dashboards as code (small panel functions composed into dashboards).

Empty until the observability issue (#6): the folder exists so the layout is fixed from day one.
"""
