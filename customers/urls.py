from django.urls import path

from ar_collections import workspace_views
from customers import views

app_name = "customers"
urlpatterns = [
    path("", views.customer_list, name="list"),
    path("<int:pk>/", views.customer_detail, name="detail"),
    path("<int:pk>/edit/", views.customer_edit, name="edit"),
    path("<int:pk>/timeline/", workspace_views.timeline_view, name="timeline"),
    path("<int:pk>/contacts/new/", views.contact_edit, name="contact_add"),
    path("<int:pk>/contacts/<int:contact_id>/edit/", views.contact_edit, name="contact_edit"),
    path("<int:pk>/contacts/<int:contact_id>/delete/", views.contact_delete, name="contact_delete"),
    path(
        "<int:pk>/contacts/<int:contact_id>/absences/new/",
        views.absence_add,
        name="absence_add",
    ),
    path("<int:pk>/absences/<int:absence_id>/delete/", views.absence_delete, name="absence_delete"),
]
