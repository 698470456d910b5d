"""The audit log browser, mounted under /audit/."""

from django.urls import path

from audit import views

app_name = "audit"
urlpatterns = [
    path("", views.event_list, name="event-list"),
    path("verify/", views.verify, name="verify"),
    path("export.csv", views.export_csv, name="export-csv"),
]
