print("lanyard-controller")
