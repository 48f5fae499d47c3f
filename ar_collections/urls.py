from django.urls import path

from ar_collections import views
from ar_collections import workspace_views as ws

app_name = "collections"
urlpatterns = [
    path("runs/", views.run_list, name="runs"),
    path("runs/start/", views.run_start, name="run_start"),
    path("review/", views.review_queue, name="review"),
    path("review/<int:pk>/", views.action_review, name="action_review"),
    path("approvals/", views.approval_queue, name="approvals"),
    path("approvals/<int:pk>/", views.action_decide, name="action_decide"),
    path("letters/", views.letter_queue, name="letters"),
    path("import/", views.receivables_import, name="import"),
    path("import/<int:pk>/", views.receivables_import_detail, name="import_detail"),
    path("import/example/<str:kind>.csv", views.receivables_import_example, name="import_example"),
    path("letters/printed/", views.letters_printed, name="letters_printed"),
    path("letters/<int:pk>/pdf/", views.letter_download, name="letter_download"),
    path("letters/<int:pk>/withdraw/", views.letter_withdraw, name="letter_withdraw"),
    path("customers/<int:pk>/cause/", views.cause_record, name="cause_record"),
    path("customers/<int:pk>/segment/", views.segment_override, name="segment_override"),
    path("customers/<int:pk>/call/", ws.call_log, name="call_log"),
    path("customers/<int:pk>/note/", ws.note_add, name="note_add"),
    path("customers/<int:pk>/copy/", ws.invoice_copy, name="invoice_copy"),
    path("customers/<int:pk>/promise/", ws.promise_record, name="promise_record"),
    path("customers/<int:pk>/payment/", ws.payment_record, name="payment_record"),
    path("customers/<int:pk>/credit-note/", ws.credit_note_record, name="credit_note_record"),
    path("customers/<int:pk>/credit-apply/", ws.credit_apply, name="credit_apply"),
    path("customers/<int:pk>/plan/", ws.plan_propose, name="plan_propose"),
    path("customers/<int:pk>/dispute/", ws.dispute_open, name="dispute_open"),
    path("customers/<int:pk>/disputes/<int:dispute_id>/resolve/", ws.dispute_resolve, name="dispute_resolve"),
    path("customers/<int:pk>/promises/<int:promise_id>/withdraw/", ws.promise_withdraw,
         name="promise_withdraw"),
    path("customers/<int:pk>/plans/<int:plan_id>/withdraw/", ws.plan_withdraw, name="plan_withdraw"),
    path("customers/<int:pk>/pause/", ws.pause_set, name="pause_set"),
    path("customers/<int:pk>/resume/", ws.pause_resume, name="pause_resume"),
    path("customers/<int:pk>/exception/", ws.exception_request, name="exception_request"),
    path("plans/<int:plan_id>/decide/", ws.plan_decide, name="plan_decide"),
    path("exceptions/<int:request_id>/decide/", ws.exception_decide, name="exception_decide"),
    path("actions/<int:pk>/", ws.action_detail, name="action_detail"),
    path("worklist/", ws.worklist_view, name="worklist"),
    path("worklist/<int:item_id>/<str:change>/", ws.work_item_change, name="work_item_change"),
]
