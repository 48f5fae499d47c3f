from django.contrib import admin
from django.contrib.auth import views as auth_views
from django.http import HttpRequest, HttpResponseRedirect
from django.shortcuts import redirect
from django.templatetags.static import static
from django.urls import include, path

from arcrm.forms import AdminSignInForm, SignInForm


def favicon(request: HttpRequest) -> HttpResponseRedirect:
    """Browsers ask for /favicon.ico on their own, for what links no icon (a
    PDF, a CSV). Temporary, and resolved per request: the icon's address carries
    a hash of its content, which changes when the icon does."""
    return HttpResponseRedirect(static("favicon.ico"))


def home(request: HttpRequest) -> HttpResponseRedirect:
    """Where signing in leads (LOGIN_REDIRECT_URL), and the site's address: a
    collector's day starts on their work for today, not on three hundred
    accounts to pick from; a read-only colleague, who has no list of work, on
    the customers. A visitor signs in first, asked for no page in particular:
    signing in leads back here, to whichever of the two is theirs."""
    if not request.user.is_authenticated:
        return redirect("login")
    if request.user.has_perm("collections.change_workitem"):
        return redirect("collections:worklist")
    return redirect("customers:list")


# The admin's sign-in page counts failed sign-ins as the login page does.
admin.site.login_form = AdminSignInForm

urlpatterns = [
    path("", home, name="home"),
    path("login/", auth_views.LoginView.as_view(
        redirect_authenticated_user=True, authentication_form=SignInForm), name="login"),
    path("logout/", auth_views.LogoutView.as_view(), name="logout"),
    path("customers/", include("customers.urls")),
    path("collections/", include("ar_collections.urls")),
    path("api/v1/", include("ar_collections.api")),
    path("admin/", admin.site.urls),
    path("favicon.ico", favicon),
]
