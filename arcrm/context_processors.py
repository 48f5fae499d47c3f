from django.utils.functional import SimpleLazyObject

from arcrm.roles import role_of


def roles(request):
    """Expose the signed-in user's role so templates can hide controls it cannot use.

    Hiding is cosmetic: every view checks permissions itself.
    """
    # Lazy: only full pages show the role; an htmx fragment skips the query.
    return {"role": SimpleLazyObject(lambda: role_of(request.user) or "")}
