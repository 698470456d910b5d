from django.urls import path

from catalog import views

app_name = "catalog"
urlpatterns = [
    path("", views.release_list, name="release-list"),
    path("<str:release_id>/", views.release_detail, name="release-detail"),
    path("<str:release_id>/download/", views.release_download, name="release-download"),
]
