"""Admin pages for users, roles and teams (and the risk policy), mounted under /manage/."""

from django.urls import path

from approvals import policy_views
from portal import manage_views

app_name = "portal"
urlpatterns = [
    path("users/", manage_views.user_list, name="user-list"),
    path("users/new/", manage_views.user_create, name="user-create"),
    path("users/<int:pk>/", manage_views.user_edit, name="user-edit"),
    path(
        "users/<int:pk>/reset/<str:kind>/",
        manage_views.user_reset,
        name="user-reset",
    ),
    path("teams/", manage_views.team_list, name="team-list"),
    path("changes/", manage_views.change_list, name="change-list"),
    path("changes/<int:pk>/decide/", manage_views.change_decide, name="change-decide"),
    path("policy/", policy_views.policy_manage, name="policy"),
    path("policy/<int:number>/", policy_views.policy_version_detail, name="policy-version"),
    path("policy/proposals/<int:pk>/", policy_views.policy_proposal_detail, name="policy-proposal"),
    path(
        "policy/proposals/<int:pk>/decide/",
        policy_views.policy_proposal_decide,
        name="policy-proposal-decide",
    ),
]
