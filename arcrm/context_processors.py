from arcrm.roles import role_of


def roles(request):
    """Expose the signed-in user's role so templates can hide controls it cannot use.

    Hiding is cosmetic: every view checks permissions itself.
    """
    return {"role": role_of(request.user)}
