enum ControllerPlaceholder {}
