print("lanyardctl")
