"""Admin pages for users, roles and teams, mounted under /manage/."""

from django.urls import path

from portal import manage_views

app_name = "portal"
urlpatterns = [
    path("users/", manage_views.user_list, name="user-list"),
    path("users/new/", manage_views.user_create, name="user-create"),
    path("users/<int:pk>/", manage_views.user_edit, name="user-edit"),
    path("teams/", manage_views.team_list, name="team-list"),
]
