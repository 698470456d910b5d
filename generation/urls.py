from django.urls import path

from generation import views

app_name = "generation"
urlpatterns = [
    path("", views.dataset_list, name="dataset-list"),
    path("new/", views.dataset_upload, name="dataset-upload"),
    path("<str:dataset_id>/", views.dataset_detail, name="dataset-detail"),
    path("<str:dataset_id>/review/", views.dataset_review, name="dataset-review"),
    path("<str:dataset_id>/estimate/", views.dataset_estimate_view, name="dataset-estimate"),
    path("<str:dataset_id>/budget/", views.dataset_budget, name="dataset-budget"),
    path("<str:dataset_id>/signoff/", views.dataset_sign_off_view, name="dataset-signoff"),
]
