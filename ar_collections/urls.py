from django.urls import path

from ar_collections import views

app_name = "collections"
urlpatterns = [
    path("runs/", views.run_list, name="runs"),
    path("runs/start/", views.run_start, name="run_start"),
    path("review/", views.review_queue, name="review"),
    path("review/<int:pk>/", views.action_review, name="action_review"),
    path("approvals/", views.approval_queue, name="approvals"),
    path("approvals/<int:pk>/", views.action_decide, name="action_decide"),
    path("letters/", views.letter_queue, name="letters"),
    path("letters/printed/", views.letters_printed, name="letters_printed"),
    path("letters/<int:pk>/pdf/", views.letter_download, name="letter_download"),
    path("customers/<int:pk>/cause/", views.cause_record, name="cause_record"),
    path("customers/<int:pk>/segment/", views.segment_override, name="segment_override"),
]
