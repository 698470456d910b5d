from django.urls import path

from generation.api import views

urlpatterns = [
    path("", views.DatasetListCreateApi.as_view(), name="api-dataset-list"),
    path("<str:dataset_id>/", views.DatasetDetailApi.as_view(), name="api-dataset-detail"),
    path("<str:dataset_id>/columns/", views.DatasetColumnsApi.as_view(), name="api-dataset-columns"),
    path(
        "<str:dataset_id>/columns/<path:column>/estimate/",
        views.DatasetColumnEstimateApi.as_view(),
        name="api-dataset-column-estimate",
    ),
    path("<str:dataset_id>/budget/", views.DatasetBudgetApi.as_view(), name="api-dataset-budget"),
    path("<str:dataset_id>/budget/entries/", views.DatasetLedgerApi.as_view(), name="api-dataset-ledger"),
    path("<str:dataset_id>/signoff/", views.DatasetSignOffApi.as_view(), name="api-dataset-signoff"),
]
